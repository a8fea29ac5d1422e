/* pair_style so3krates (see pair_so3krates.h for the message-passing design).

   pair_style so3krates [device cpu|cuda]
   pair_coeff * * model-lammps.pt El1 El2 ...    (one element per LAMMPS atom type)
   pair_coeff * * model.pt2 El1 El2 ...          (a compiled package: `so3k export --format aoti`) */

#include "pair_so3krates.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "json.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>

using namespace LAMMPS_NS;

// Copies of the Python side's constants (tests/lammps/test_contract.py pins them): the only
// exported-file format (export/metadata.py FORMAT_VERSION) and module contract
// (export/lammps.py CONTRACT) this plugin understands, and why a non-local model refuses to be
// split or periodic (so3k/capabilities.py NONLOCAL_REASON).
static constexpr int FORMAT_VERSION = 1;
static const char *const CONTRACT = "positions,species,n_local;single_domain:positions,species,cell,pbc";
static const char *const NONLOCAL_REASON =
    "non-local attention compares every pair of atoms of one whole structure, so it is defined for "
    "non-periodic structures that are not split into domains";
static const char *const EXPORT_HINT = "export it with `so3k export CHECKPOINT --engine lammps -o model-lammps.pt`";
static const char *const PACKAGE_HINT = "compile it here with `so3k export CHECKPOINT --format aoti -o model.pt2`";

static bool is_package(const std::string &path)
{
  return path.size() > 4 && path.compare(path.size() - 4, 4, ".pt2") == 0;
}

Pair *LAMMPS_NS::create_pair_so3krates(LAMMPS *lmp)
{
  return new PairSo3krates(lmp);
}

PairSo3krates::PairSo3krates(LAMMPS *lmp) :
    Pair(lmp), device(torch::kCPU), loaded(false), cutoff(0.0), ghost_cutoff(0.0), nonlocal(false)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  // the virial is computed here (sum r f over owned + ghost atoms, or the strain derivative)
  no_virial_fdotr_compute = 1;
  ghosts_always = false;
  single_domain = false;
  min_distance = -1.0;
  check_masses = true;
}

PairSo3krates::~PairSo3krates()
{
  package.reset();
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairSo3krates::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

void PairSo3krates::settings(int narg, char **arg)
{
  int iarg = 0;
  while (iarg < narg) {
    if (strcmp(arg[iarg], "device") == 0) {
      if (iarg + 1 >= narg) error->all(FLERR, "pair_style so3krates: `device` needs a value: cpu or cuda");
      std::string name = arg[iarg + 1];
      if (name == "cpu") {
        device = torch::Device(torch::kCPU);
      } else if (name == "cuda") {
        if (!torch::cuda::is_available())
          error->all(FLERR, "pair_style so3krates device cuda: libtorch sees no CUDA device; use `device cpu`");
        // one rank per GPU: ranks on a node share the visible devices round-robin
        int count = (int) torch::cuda::device_count();
        device = torch::Device(torch::kCUDA, comm->me % count);
      } else {
        error->all(FLERR, "pair_style so3krates: unknown device {}; use cpu or cuda", name);
      }
      iarg += 2;
    } else if (strcmp(arg[iarg], "ghosts") == 0) {
      if (iarg + 1 >= narg || (strcmp(arg[iarg + 1], "auto") != 0 && strcmp(arg[iarg + 1], "always") != 0))
        error->all(FLERR, "pair_style so3krates: `ghosts` takes auto (default) or always");
      ghosts_always = strcmp(arg[iarg + 1], "always") == 0;
      iarg += 2;
    } else if (strcmp(arg[iarg], "min_distance") == 0) {
      if (iarg + 1 >= narg) error->all(FLERR, "pair_style so3krates: `min_distance` needs a distance in Angstrom (0: no check)");
      min_distance = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (min_distance < 0) error->all(FLERR, "pair_style so3krates: `min_distance` must be >= 0 Angstrom (0: no check)");
      iarg += 2;
    } else if (strcmp(arg[iarg], "check_masses") == 0) {
      if (iarg + 1 >= narg || (strcmp(arg[iarg + 1], "yes") != 0 && strcmp(arg[iarg + 1], "no") != 0))
        error->all(FLERR, "pair_style so3krates: `check_masses` takes yes (default) or no");
      check_masses = strcmp(arg[iarg + 1], "yes") == 0;
      iarg += 2;
    } else {
      error->all(FLERR,
                 "pair_style so3krates: unknown keyword {}; the keywords are `device cpu|cuda`, `ghosts auto|always`, "
                 "`min_distance <Angstrom>` and `check_masses yes|no`",
                 arg[iarg]);
    }
  }
}

void PairSo3krates::load_model(const std::string &path)
{
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe.good())
      error->all(FLERR, "pair_coeff so3krates: cannot read the model file {} ({}); {}", path,
                 std::strerror(errno), EXPORT_HINT);
  }
  const bool compiled = is_package(path);
  std::string text;
  if (compiled) {
    text = package_metadata(path);
  } else {
    torch::jit::ExtraFilesMap extra{{"so3k.json", ""}};
    try {
      module = torch::jit::load(path, device, extra);
    } catch (const std::exception &e) {
      std::string what = e.what();
      what = what.substr(0, what.find('\n'));
      error->all(FLERR, "pair_coeff so3krates: {} is not a TorchScript file that this libtorch can read ({}); {}", path,
                 what, EXPORT_HINT);
    }
    module.eval();
    // Without a fuser (none on CPU in the PyPI wheels) the profiling executor's shape
    // specialisation and differentiable subgraphs only add work: energy + forces ran up to 1.6x
    // slower than op by op. Ask for none (as so3k.runtime.plain_torchscript does in Python).
    torch::jit::FusionStrategy no_specialisation = {{torch::jit::FusionBehavior::STATIC, 0},
                                                    {torch::jit::FusionBehavior::DYNAMIC, 0}};
    torch::jit::setFusionStrategy(no_specialisation);
    text = extra["so3k.json"];
  }
  if (text.empty())
    error->all(FLERR, "pair_coeff so3krates: {} has no so3k.json metadata, so it was not made by so3k; {}", path,
               compiled ? PACKAGE_HINT : EXPORT_HINT);

  json meta;
  try {
    meta = json::parse(text);
    if (meta.value("format", "") != "so3k-exported-model")
      error->all(FLERR, "pair_coeff so3krates: the metadata of {} does not describe a so3k model; {}", path, EXPORT_HINT);
    int version = meta.at("format_version").get<int>();
    if (version > FORMAT_VERSION)
      error->all(FLERR,
                 "pair_coeff so3krates: {} has format version {} (so3k {}), newer than this plugin's {}: rebuild the "
                 "plugin from that so3k with `so3k lammps build`",
                 path, version, meta.value("so3k_version", "?"), FORMAT_VERSION);
    std::string engine = meta.value("engine", "");
    if (compiled) {
      // a package runs only with the torch it was compiled by, and on its kind of device
      if (engine != "aoti")
        error->all(FLERR, "pair_coeff so3krates: {} is not a so3k compiled package; {}", path, PACKAGE_HINT);
      std::string built_for = meta.value("device", "cpu"), here = device.is_cuda() ? "cuda" : "cpu";
      if (built_for != here)
        error->all(FLERR,
                   "pair_coeff so3krates: {} was compiled for {}, and this pair_style runs on {}: use `device {}`, or "
                   "export again with --device {}",
                   path, built_for, here, built_for, here);
      std::string made_with = meta.value("torch_version", "?");
      std::string ours = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + ".";
      if (made_with.compare(0, ours.size(), ours) != 0)
        error->all(FLERR,
                   "pair_coeff so3krates: {} was compiled with torch {}; this plugin's libtorch is {}.{}: {} with that "
                   "torch",
                   path, made_with, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, PACKAGE_HINT);
      package_dtype = meta.value("dtype", "float32") == "float64" ? torch::kFloat64 : torch::kFloat32;
    } else {
      if (engine != "lammps")
        error->all(FLERR, "pair_coeff so3krates: {} was exported for {}, not LAMMPS; {}", path, engine, EXPORT_HINT);
      std::string style = meta.at("units").value("style", "");
      if (style != "metal")
        error->all(FLERR, "pair_coeff so3krates: {} uses units {}, but this plugin needs units metal; {}", path, style,
                   EXPORT_HINT);
    }
    std::string contract = meta.value("contract", "");
    if (!compiled && contract != CONTRACT)
      error->all(FLERR,
                 "pair_coeff so3krates: {} has module contract '{}', this plugin calls '{}': rebuild the plugin "
                 "with the so3k that exported the file (`so3k lammps build`)",
                 path, contract, CONTRACT);
    elements = meta.at("elements").get<std::vector<std::string>>();
    element_masses = meta.value("masses", std::vector<double>());  // absent in files of so3k 0.1.0
    cutoff = meta.at("cutoff").get<double>();
    ghost_cutoff = meta.at("ghost_cutoff").get<double>();
    nonlocal = meta.value("nonlocal_attention", false);
    preset = meta.value("preset", "?");
    dtype = meta.value("dtype", "?");
    so3k_version = meta.value("so3k_version", "?");
  } catch (const json::exception &e) {
    error->all(FLERR, "pair_coeff so3krates: the metadata of {} is incomplete or corrupt ({}); {}", path, e.what(),
               EXPORT_HINT);
  }
  if (!(ghost_cutoff >= cutoff && cutoff > 0.0))
    error->all(FLERR, "pair_coeff so3krates: {} has an invalid cutoff {} / ghost cutoff {}", path, cutoff, ghost_cutoff);
  if (compiled) {
    try {
      package = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          path, "model", false, 1, device.is_cuda() ? device.index() : (c10::DeviceIndex) -1);
    } catch (const std::exception &e) {
      std::string what = e.what();
      error->all(FLERR, "pair_coeff so3krates: the compiled package {} could not be loaded ({}); {}", path,
                 what.substr(0, what.find('\n')), PACKAGE_HINT);
    }
  } else if (min_distance >= 0.0) {
    if (!module.hasattr("min_distance"))
      error->all(FLERR, "pair_style so3krates min_distance: {} was exported by an older so3k without the distance check; {}",
                 path, EXPORT_HINT);
    module.setattr("min_distance", torch::tensor(min_distance, torch::TensorOptions().dtype(torch::kFloat64).device(device)));
  }
  model_path = path;
  loaded = true;
}

std::string PairSo3krates::package_metadata(const std::string &path)
{
  // A .pt2 is a PyTorch zip archive; AOTInductor keeps its metadata, so3k.json included, in
  // data/aotinductor/model/<hash>.wrapper_metadata.json. Reading it first lets a package for
  // another device or torch be refused with the reason instead of failing inside the loader.
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const auto &name : reader.getAllRecords()) {
      const std::string suffix = "wrapper_metadata.json";
      if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
      auto record = reader.getRecord(name);
      json raw = json::parse(std::string(static_cast<const char *>(std::get<0>(record).get()), std::get<1>(record)));
      return raw.value("so3k.json", "");
    }
  } catch (const std::exception &e) {
    std::string what = e.what();
    error->all(FLERR, "pair_coeff so3krates: {} is not a compiled package ({}); {}", path, what.substr(0, what.find('\n')),
               PACKAGE_HINT);
  }
  error->all(FLERR, "pair_coeff so3krates: {} is a zip archive but not an AOTInductor package; {}", path, PACKAGE_HINT);
  return "";
}

void PairSo3krates::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  int ntypes = atom->ntypes;
  if (narg < 3 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for so3krates must be `pair_coeff * * model-lammps.pt El1 El2 ...`");
  if (narg != 3 + ntypes)
    error->all(FLERR,
               "pair_coeff so3krates: give one element name per atom type: {} type(s) in this system, {} name(s) "
               "given after the model file",
               ntypes, narg - 3);
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style so3krates needs `units metal` (Angstrom, eV), not units {}", update->unit_style);

  load_model(arg[2]);

  std::string known;
  for (const auto &e : elements) known += (known.empty() ? "" : " ") + e;
  if (comm->me == 0)
    utils::logmesg(lmp, "pair so3krates: {} ({}, elements {}, cutoff {} A, receptive field {} A, {}, so3k {})\n",
                   model_path, preset, known, cutoff, ghost_cutoff, dtype, so3k_version);
  // A species index is the element's position in the model's element list, as in so3k.species.
  species_of_type.assign(ntypes + 1, -1);
  for (int itype = 1; itype <= ntypes; itype++) {
    std::string name = arg[2 + itype];
    if (name == "NULL")
      error->all(FLERR,
                 "pair_coeff so3krates: type {} is NULL, but a So3krates model must see every atom; name its "
                 "element (the model has: {})",
                 itype, known);
    auto found = std::find(elements.begin(), elements.end(), name);
    if (found == elements.end())
      error->all(FLERR, "pair_coeff so3krates: element {} (type {}) is not in the model {}, which has: {}", name, itype,
                 model_path, known);
    species_of_type[itype] = found - elements.begin();
  }

  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
}

void PairSo3krates::init_style()
{
  if (!loaded) error->all(FLERR, "pair_style so3krates: no model loaded; add `pair_coeff * * model-lammps.pt El1 ...`");
  if (force->newton_pair == 0)
    error->all(FLERR,
               "pair_style so3krates requires `newton on`: forces on ghost atoms must go back to their owners");
  if (domain->dimension != 3) error->all(FLERR, "pair_style so3krates works in 3d only");
  // a type named after the wrong element runs at the wrong temperature without any other sign
  if (check_masses && !element_masses.empty() && atom->mass != nullptr)
    for (int itype = 1; itype <= atom->ntypes; itype++) {
      if (!atom->mass_setflag[itype]) continue;
      double expected = element_masses[species_of_type[itype]], mass = atom->mass[itype];
      if (std::fabs(mass - expected) > 0.05 * expected)
        error->all(FLERR,
                   "pair_coeff so3krates: type {} is named {} ({:.3f} u), but its mass is {:.3f} u: the element names "
                   "after the model file must follow the types' order in the data file; fix them, or add "
                   "`check_masses no` to pair_style for isotopes",
                   itype, elements[species_of_type[itype]], expected, mass);
    }
  if (nonlocal && comm->nprocs > 1)
    error->all(FLERR,
               "pair_style so3krates: {} cannot be split over MPI ranks: {}; run it on one rank ({} ranks now)",
               model_path, NONLOCAL_REASON, comm->nprocs);
  // No LAMMPS neighbour list is requested: the model builds its own pair list. On several
  // ranks the pair cutoff returned by init_one makes LAMMPS keep ghosts out to the receptive
  // field (plus the skin); on one rank the model needs no ghosts at all.
  single_domain = comm->nprocs == 1 && !ghosts_always && !package;
  if (package) {
    // LAMMPS's full neighbour list, ghosts' neighbours included, within the model's cutoff (+ skin);
    // ghosts are kept out to the receptive field so that every owned atom's energy is complete
    neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_GHOST);
    comm->cutghostuser = std::max(comm->cutghostuser, ghost_cutoff + neighbor->skin);
  }
  if (nonlocal && (domain->xperiodic || domain->yperiodic || domain->zperiodic))
    error->all(FLERR,
               "pair_style so3krates: {} cannot run on a periodic box: {}; use `boundary s s s` or `f f f`, or a "
               "local model",
               model_path, NONLOCAL_REASON);
  if (ghosts_always && nonlocal)
    error->all(FLERR, "pair_style so3krates: {} cannot use `ghosts always`: {}", model_path, NONLOCAL_REASON);
  if (comm->me == 0) {
    if (package)
      utils::logmesg(lmp, "pair so3krates: compiled package on LAMMPS's neighbour list, ghost shell of {} A (+ skin) on {} rank(s)\n",
                     ghost_cutoff, comm->nprocs);
    else if (single_domain)
      utils::logmesg(lmp, "pair so3krates: one rank, the model takes periodic images from the box (no ghost shell)\n");
    else
      utils::logmesg(lmp, "pair so3krates: ghost shell of {} A (+ skin) on {} rank(s)\n", ghost_cutoff, comm->nprocs);
  }
}

double PairSo3krates::init_one(int, int)
{
  // a package's neighbour list needs the pair cutoff only; its ghost shell is set in init_style
  return single_domain || package ? cutoff : ghost_cutoff;
}

void PairSo3krates::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (vflag_atom || cvflag_atom)
    error->all(FLERR, "pair_style so3krates computes the total virial only, not per-atom virials (compute stress/atom)");
  const int nlocal = atom->nlocal;
  if (package)
    compute_package(nlocal, nlocal + atom->nghost);
  else if (single_domain)
    compute_single_domain(nlocal);
  else
    compute_ghost_shell(nlocal, nlocal + atom->nghost);
}

static torch::Tensor species_tensor(const int *type, int n, const std::vector<int64_t> &species_of_type)
{
  torch::Tensor species = torch::empty({n}, torch::kInt64);
  auto s = species.accessor<int64_t, 1>();
  for (int i = 0; i < n; i++) s[i] = species_of_type[type[i]];
  return species;
}

static std::vector<torch::Tensor> call(torch::jit::Module &module, const std::string &method,
                                       std::vector<torch::jit::IValue> inputs, Error *error, int ntotal, int nlocal,
                                       bigint step)
{
  std::vector<torch::Tensor> out;
  try {
    auto result = module.get_method(method)(std::move(inputs)).toTuple();
    for (const auto &value : result->elements())
      out.push_back(value.toTensor().to(torch::kCPU, torch::kFloat64).contiguous());
  } catch (const std::exception &e) {
    // TorchScript puts its traceback first and the error itself on the last line
    std::string what = e.what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    std::string last = what.substr(what.rfind('\n') == std::string::npos ? 0 : what.rfind('\n') + 1);
    error->one(FLERR, "pair_style so3krates: the model failed at step {} on {} atoms ({} owned): {}", step, ntotal, nlocal,
               last);
  }
  return out;
}

void PairSo3krates::compute_single_domain(int nlocal)
{
  if (nlocal == 0) return;
  // atom->x is one contiguous block of 3 * nmax doubles
  torch::Tensor positions = torch::from_blob(&atom->x[0][0], {nlocal, 3}, torch::kFloat64);
  // LAMMPS boxes: a = (xprd, 0, 0), b = (xy, yprd, 0), c = (xz, yz, zprd); h = xprd yprd zprd yz xz xy
  const double *h = domain->h;
  torch::Tensor cell = torch::zeros({3, 3}, torch::kFloat64);
  auto c = cell.accessor<double, 2>();
  c[0][0] = h[0];
  c[1][0] = h[5];
  c[1][1] = h[1];
  c[2][0] = h[4];
  c[2][1] = h[3];
  c[2][2] = h[2];
  torch::Tensor pbc =
      torch::tensor(std::vector<int64_t>{domain->xperiodic, domain->yperiodic, domain->zperiodic}).to(torch::kBool);
  auto out = call(module, "single_domain",
                  {positions.to(device), species_tensor(atom->type, nlocal, species_of_type).to(device), cell.to(device),
                   pbc.to(device)},
                  error, nlocal, nlocal, update->ntimestep);
  accumulate(out[0], out[1], out[2], nlocal, nlocal);
  if (vflag_global) {
    auto w = out[3].accessor<double, 1>();
    for (int k = 0; k < 6; k++) virial[k] += w[k];
  }
}

void PairSo3krates::compute_ghost_shell(int nlocal, int ntotal)
{
  if (ntotal == 0) return;
  double **x = atom->x;
  torch::Tensor positions = torch::from_blob(&x[0][0], {ntotal, 3}, torch::kFloat64);
  auto out = call(module, "forward",
                  {positions.to(device), species_tensor(atom->type, ntotal, species_of_type).to(device), (int64_t) nlocal},
                  error, ntotal, nlocal, update->ntimestep);
  accumulate(out[0], out[1], out[2], ntotal, nlocal);
  if (vflag_global) add_position_virial(out[1], ntotal);
}

void PairSo3krates::compute_package(int nlocal, int ntotal)
{
  if (nlocal == 0) return;  // the energy is the owned atoms': none here, and no force from it
  double **x = atom->x;
  const double cut2 = cutoff * cutoff, close = min_distance < 0.0 ? 0.5 : min_distance;  // 0.5 A: the model's default
  std::vector<int64_t> pair_i, pair_j;
  const int nlist = list->inum + list->gnum;
  for (int k = 0; k < nlist; k++) {
    const int i = list->ilist[k];
    const int *neighbours = list->firstneigh[i];
    for (int m = 0; m < list->numneigh[i]; m++) {
      const int j = neighbours[m] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double r2 = dx * dx + dy * dy + dz * dz;
      if (r2 >= cut2) continue;
      if (r2 < close * close)
        error->one(FLERR,
                   "pair_style so3krates: atoms {} and {} (IDs) are {:.3f} A apart at step {}, closer than min_distance "
                   "{} A: atoms overlap or the simulation blew up",
                   std::min(atom->tag[i], atom->tag[j]), std::max(atom->tag[i], atom->tag[j]), std::sqrt(r2),
                   update->ntimestep, close);
      pair_i.push_back(i);
      pair_j.push_back(j);
    }
  }
  const int64_t npairs = (int64_t) pair_i.size();
  if (npairs == 0)
    error->one(FLERR, "pair_style so3krates: no two atoms within the cutoff on this rank; a compiled package needs "
                      "at least one pair (use the TorchScript export for isolated atoms)");
  auto real = torch::TensorOptions().dtype(package_dtype).device(device);
  auto index = torch::TensorOptions().dtype(torch::kInt64).device(device);
  std::vector<torch::Tensor> inputs = {
      torch::from_blob(&x[0][0], {ntotal, 3}, torch::kFloat64).to(real),
      species_tensor(atom->type, ntotal, species_of_type).to(device),
      torch::from_blob(pair_i.data(), {npairs}, torch::kInt64).to(index, false, true),
      torch::from_blob(pair_j.data(), {npairs}, torch::kInt64).to(index, false, true),
      torch::zeros({npairs, 3}, real),    // ghosts are images already: no cell offsets
      torch::zeros({3, 3}, real),
      torch::scalar_tensor((int64_t) nlocal, index)};
  std::vector<torch::Tensor> out;
  try {
    for (auto &value : package->run(inputs)) out.push_back(value.to(torch::kCPU, torch::kFloat64).contiguous());
  } catch (const std::exception &e) {
    std::string what = e.what();
    error->one(FLERR, "pair_style so3krates: the compiled package failed at step {} on {} atoms ({} owned): {}",
               update->ntimestep, ntotal, nlocal, what.substr(0, what.find('\n')));
  }
  accumulate(out[0], out[2], out[1].slice(0, 0, nlocal).contiguous(), ntotal, nlocal);
  if (vflag_global) add_position_virial(out[2], ntotal);
}

void PairSo3krates::add_position_virial(const torch::Tensor &forces, int ntotal)
{
  // sum_i r_i f_i over owned and ghost atoms: ghosts are the periodic images that carry the
  // box dependence (what LAMMPS's fdotr computes, restricted to this style's forces)
  double **x = atom->x;
  auto fa = forces.accessor<double, 2>();
  for (int i = 0; i < ntotal; i++) {
    virial[0] += x[i][0] * fa[i][0];
    virial[1] += x[i][1] * fa[i][1];
    virial[2] += x[i][2] * fa[i][2];
    virial[3] += x[i][1] * fa[i][0];
    virial[4] += x[i][2] * fa[i][0];
    virial[5] += x[i][2] * fa[i][1];
  }
}

void PairSo3krates::accumulate(const torch::Tensor &energy, const torch::Tensor &forces,
                               const torch::Tensor &atom_energies, int nforces, int nlocal)
{
  if (forces.size(0) != nforces || atom_energies.size(0) != nlocal)
    error->one(FLERR, "pair_style so3krates: the model returned {} forces and {} atom energies for {} atoms ({} owned)",
               forces.size(0), atom_energies.size(0), nforces, nlocal);
  const double e = energy.item<double>();
  if (!std::isfinite(e) || !torch::isfinite(forces).all().item<bool>())
    error->one(FLERR,
               "pair_style so3krates: non-finite energy or forces at step {}: atoms overlap or the simulation left "
               "the region the model was trained on",
               update->ntimestep);
  double **f = atom->f;
  auto fa = forces.accessor<double, 2>();
  for (int i = 0; i < nforces; i++) {
    f[i][0] += fa[i][0];
    f[i][1] += fa[i][1];
    f[i][2] += fa[i][2];
  }
  if (eflag_global) eng_vdwl += e;
  if (eflag_atom) {
    auto ea = atom_energies.accessor<double, 1>();
    for (int i = 0; i < nlocal; i++) eatom[i] += ea[i];
  }
}
