/* pair_style so3krates: a So3krates model exported with `so3k export --engine lammps`.

   Message passing under domain decomposition: an atom's energy depends on atoms up to the
   model's receptive field away (layers x cutoff, one cutoff more for the averaged SPHC
   initialisation), so LAMMPS keeps ghost atoms out to that distance (metadata `ghost_cutoff`).
   The model evaluates owned and ghost atoms together, returns the energy of the OWNED atoms and
   forces on ALL of them; `newton on` sends the ghost forces back to their owners, and the
   virial is sum_i r_i f_i over owned and ghost atoms.

   Per-layer exchange (`exchange layer`, the default on several ranks) needs ghosts out to one
   cutoff (+ skin) only: the plugin runs the model layer by layer on the pairs of owned centres,
   copies the owners' features (x, chi) to their ghost images before each layer (forward
   communication), and in the backward pass, layer by layer, sums the gradients that reached ghost
   features into their owners (reverse communication), so that energies, forces and the virial
   stay exact. `exchange shell` keeps the deep ghost shell above, for comparison.

   On one MPI rank that shell is not needed: by default the model then sees the owned atoms and
   the box, takes periodic images from the cell itself (as the ASE calculator does) and returns
   the virial from its strain derivative. `pair_style so3krates ghosts always` keeps the ghost
   path on one rank too. */

#ifdef PAIR_CLASS
// clang-format off
PairStyle(so3krates,PairSo3krates);
// clang-format on
#else

#ifndef LMP_PAIR_SO3KRATES_H
#define LMP_PAIR_SO3KRATES_H

#include "pair.h"

#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

namespace torch::inductor {
class AOTIModelPackageLoader;
}

namespace LAMMPS_NS {

class PairSo3krates : public Pair {
 public:
  PairSo3krates(class LAMMPS *);
  ~PairSo3krates() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void finish() override;
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 protected:
  void allocate();
  void load_model(const std::string &path);
  std::string package_metadata(const std::string &path);  // so3k.json of a .pt2, read before its code is loaded
  void compute_package(int nlocal, int ntotal);
  void compute_single_domain(int nlocal);
  void compute_ghost_shell(int nlocal, int ntotal);
  void compute_halo(int nlocal, int ntotal);
  torch::Tensor exchange_forward(const torch::Tensor &rows, int nlocal, int ntotal);
  torch::Tensor exchange_reverse(const torch::Tensor &rows, int nlocal, int ntotal);
  void add_position_virial(const torch::Tensor &forces, int ntotal);
  void accumulate(const torch::Tensor &energy, const torch::Tensor &forces, const torch::Tensor &atom_energies,
                  int nforces, int nlocal);

  torch::jit::Module module;
  // a compiled package (`so3k export --format aoti`, a .pt2) instead of the TorchScript module:
  // it takes LAMMPS's own neighbour list (full, with ghosts) and always works on the ghost shell
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> package;
  torch::ScalarType package_dtype;
  torch::Device device;
  bool loaded;
  std::vector<std::string> elements;     // the model's elements; species = index in this list
  std::vector<int64_t> species_of_type;  // LAMMPS type (1-based) -> model species
  double cutoff;                         // the model's pair cutoff (Angstrom)
  double ghost_cutoff;                   // the model's receptive field (Angstrom)
  bool nonlocal;                         // all-pairs SPHC attention: cannot be decomposed
  bool ghosts_always;                    // `ghosts always`: the ghost path even on one rank
  double min_distance;                   // `min_distance`: closer atoms stop the run (< 0: the model's default)
  bool check_masses;                     // `check_masses`: type masses must match the named elements
  std::vector<double> element_masses;    // the model's element masses (u), from the metadata
  bool single_domain;                    // this run: owned atoms + cell instead of ghost shell
  bool exchange_shell;                   // `exchange shell`: the deep ghost shell instead of per-layer exchange
  bool halo;                             // this run: per-layer exchange over one cutoff of ghosts
  int layers;                            // the model's number of layers (metadata)
  int halo_width;                        // doubles per atom in one exchange: features + SPHC components
  std::vector<double> halo_rows;         // (atoms, halo_width) rows that the exchanges read and write
  double exchange_seconds;               // wall time in the exchanges (host copies + LAMMPS communication)
  bigint exchanges;                      // how many, since the last run's summary
  std::string model_path;
  std::string preset, dtype, so3k_version;  // from the metadata, for the log
};

Pair *create_pair_so3krates(class LAMMPS *);    // the plugin's factory

}    // namespace LAMMPS_NS

#endif
#endif
