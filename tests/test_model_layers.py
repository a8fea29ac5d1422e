"""The per-layer entry points of So3krates (embed, geometry, initial_sphc, run_layer,
readout_energies) driven the way a domain-decomposed engine drives them: each domain holds its
owned atoms and one cutoff of ghost images, updates only its owned atoms, copies their x and chi
to the ghosts between layers (forward exchange), and in the backward pass sums the gradients
that reached ghost rows into their owners (reverse exchange), layer by layer. Energies and
forces must equal the whole-system model's (float64)."""

from typing import Dict, List

import pytest
import torch

import so3k
from so3k.forces import ForceField
from so3k.graph import build_graph

TINY = dict(layers=3, features=24, num_radial=8, radial_hidden=16, sphc_hidden=8)


def domains(atoms, graph, count: int) -> List[Dict[str, torch.Tensor]]:
    """Split a periodic structure into `count` slabs along the first cell vector: per slab its
    owned atoms (global ids), then one ghost per distinct periodic image that an owned atom
    sees within the cutoff (positions written out, zero shifts, as LAMMPS ghosts are)."""
    fractional = atoms.get_scaled_positions(wrap=True)[:, 0]
    positions, cell = graph.positions, graph.cell[0]
    idx_i, idx_j, offsets = graph.idx_i.tolist(), graph.idx_j.tolist(), graph.offsets.to(torch.long).tolist()
    out = []
    for d in range(count):
        owned = [a for a in range(len(atoms)) if int(fractional[a] * count) == d]
        local = {(a, (0, 0, 0)): k for k, a in enumerate(owned)}
        owner = list(owned)
        pos = [positions[a] for a in owned]
        pairs_i, pairs_j = [], []
        for i, j, offset in zip(idx_i, idx_j, offsets):
            if (i, (0, 0, 0)) not in local or local[(i, (0, 0, 0))] >= len(owned):
                continue
            key = (j, tuple(offset))
            if key not in local:
                local[key] = len(owner)
                owner.append(j)
                pos.append(positions[j] + torch.tensor(offset, dtype=positions.dtype) @ cell)
            pairs_i.append(local[(i, (0, 0, 0))])
            pairs_j.append(local[key])
        out.append({"n": len(owned), "owner": torch.tensor(owner), "positions": torch.stack(pos),
                    "species": graph.species[torch.tensor(owner)], "i": torch.tensor(pairs_i), "j": torch.tensor(pairs_j)})
    return out


def forward_exchange(outputs: List[torch.Tensor], parts, num_atoms: int) -> List[torch.Tensor]:
    """Each domain's rows for the next layer: its owned rows as computed, ghost rows copied from the owners."""
    owned_rows = torch.zeros((num_atoms, outputs[0].shape[1]), dtype=outputs[0].dtype)
    for out, part in zip(outputs, parts):
        owned_rows[part["owner"][: part["n"]]] = out[: part["n"]].detach()
    return [torch.cat([out[: p["n"]].detach(), owned_rows[p["owner"][p["n"]:]]]).requires_grad_(True) for out, p in zip(outputs, parts)]


def reverse_exchange(grads: List[torch.Tensor], parts, num_atoms: int) -> List[torch.Tensor]:
    """Gradients of the owned rows, with what reached their ghost images in any domain summed in."""
    total = torch.zeros((num_atoms, grads[0].shape[1]), dtype=grads[0].dtype)
    for g, part in zip(grads, parts):
        total.index_add_(0, part["owner"][part["n"]:], g[part["n"]:])
    return [g[: p["n"]] + total[p["owner"][: p["n"]]] for g, p in zip(grads, parts)]


def layer_by_layer(model, parts, num_atoms: int):
    """Energy and forces with the exchanges done explicitly, the backward segmented per layer."""
    geometry, inputs, outputs = [], [], []
    for part in parts:
        part["pos"] = part["positions"].clone().requires_grad_(True)
        zeros = torch.zeros((part["i"].shape[0], 3), dtype=part["pos"].dtype)
        geometry.append(model.geometry(part["pos"], part["i"], part["j"], zeros))
    chi0 = [model.initial_sphc(g[1], g[2], p["i"], p["positions"].shape[0]) for g, p in zip(geometry, parts)]
    x = forward_exchange([model.embed(p["species"]) for p in parts], parts, num_atoms)
    chi = forward_exchange(chi0, parts, num_atoms)
    for t in range(model.num_layers):
        inputs.append((x, chi))
        # only the owned rows are computed (every centre is owned)
        outputs.append([model.run_layer(t, xd, cd, *g, p["i"], p["j"], p["n"]) for xd, cd, g, p in zip(x, chi, geometry, parts)])
        x = forward_exchange([o[0] for o in outputs[-1]], parts, num_atoms)
        chi = forward_exchange([o[1] for o in outputs[-1]], parts, num_atoms)
    energies = [model.readout_energies(xd, p["species"])[: p["n"]] for xd, p in zip(x, parts)]
    energy = sum(e.sum() for e in energies)
    position_grads = [torch.zeros_like(p["pos"]) for p in parts]
    grad_x = reverse_exchange([torch.autograd.grad(e.sum(), xd)[0] for e, xd in zip(energies, x)], parts, num_atoms)
    grad_chi = [torch.zeros((p["n"], chi[0].shape[1]), dtype=chi[0].dtype) for p in parts]
    for t in reversed(range(model.num_layers)):
        x_in, chi_in = inputs[t]
        new_x, new_chi = [], []
        for d, part in enumerate(parts):
            n = part["n"]
            out_x, out_chi = outputs[t][d]
            gx, gc, gp = torch.autograd.grad([out_x[:n], out_chi[:n]], [x_in[d], chi_in[d], part["pos"]],
                                             [grad_x[d], grad_chi[d]], retain_graph=True, allow_unused=True)
            position_grads[d] += gp
            new_x.append(gx)
            new_chi.append(gc)
        grad_x = reverse_exchange(new_x, parts, num_atoms)
        grad_chi = reverse_exchange(new_chi, parts, num_atoms)
    for d, part in enumerate(parts):  # the averaged SPHC start depends on the positions (neurips2022)
        if chi0[d].requires_grad:
            (gp,) = torch.autograd.grad(chi0[d][: part["n"]], part["pos"], grad_chi[d], allow_unused=True)
            if gp is not None:
                position_grads[d] += gp
    forces = torch.zeros((num_atoms, 3), dtype=energy.dtype)
    for g, part in zip(position_grads, parts):  # ghosts' forces go to their owners (LAMMPS: reverse comm)
        forces.index_add_(0, part["owner"], -g)
    return energy.detach(), forces


@pytest.mark.parametrize("preset", ["euclidean2024", "neurips2022"])
@pytest.mark.parametrize("count", [2, 3])
def test_layer_by_layer_with_exchanges_equals_the_whole_system(preset, count, make_water):
    torch.manual_seed(0)
    atoms = make_water(3, seed=4)  # triclinic, 81 atoms; slabs thinner than the receptive field
    model = so3k.build_model(preset, elements=["H", "O"], **TINY).double().eval()
    graph = build_graph([atoms], model.config.elements, model.cutoff, torch.float64)
    reference = ForceField(model)(**graph.inputs())
    parts = domains(atoms, graph, count)
    assert sum(p["n"] for p in parts) == len(atoms) and all(p["owner"].shape[0] > p["n"] for p in parts)
    energy, forces = layer_by_layer(model, parts, len(atoms))
    torch.testing.assert_close(energy, reference["energy"][0], rtol=1e-12, atol=0.0)
    torch.testing.assert_close(forces, reference["forces"], rtol=1e-10, atol=1e-11)


def test_run_layer_is_scripted_and_refuses_a_missing_layer():
    model = so3k.build_model("euclidean2024", elements=["H", "O"], **TINY).double().eval()
    scripted = torch.jit.script(model)
    x, chi = torch.zeros(2, 24, dtype=torch.float64), torch.zeros(2, 24, dtype=torch.float64)
    empty = torch.zeros(0, dtype=torch.long)
    rbf, sph, phi = torch.zeros(0, 8, dtype=torch.float64), torch.zeros(0, 24, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
    out_x, _ = scripted.run_layer(0, x, chi, rbf, sph, phi, empty, empty)
    torch.testing.assert_close(out_x, model.run_layer(0, x, chi, rbf, sph, phi, empty, empty)[0])
    with pytest.raises(Exception, match="layer 3 does not exist"):
        scripted.run_layer(3, x, chi, rbf, sph, phi, empty, empty)
    assert bool(torch.isfinite(out_x).all())
