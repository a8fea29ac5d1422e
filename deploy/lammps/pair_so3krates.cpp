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
#include "platform.h"
#include "update.h"
#include "utils.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <torch/csrc/autograd/autograd.h>

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
static const char *const CONTRACT =
    "positions,species,n_local;single_domain:positions,species,cell,pbc;halo:start,layer,readout";
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
  exchange_shell = false;
  halo = false;
  layers = 0;
  halo_width = 0;
  exchange_seconds = 0.0;
  exchanges = 0;
  comm_forward = comm_reverse = 0;
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
    } else if (strcmp(arg[iarg], "exchange") == 0) {
      if (iarg + 1 >= narg || (strcmp(arg[iarg + 1], "layer") != 0 && strcmp(arg[iarg + 1], "shell") != 0))
        error->all(FLERR, "pair_style so3krates: `exchange` takes layer (default: one cutoff of ghosts, features "
                          "exchanged between layers) or shell (ghosts out to the receptive field)");
      exchange_shell = strcmp(arg[iarg + 1], "shell") == 0;
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
                 "`exchange layer|shell`, `min_distance <Angstrom>` and `check_masses yes|no`",
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
    layers = meta.value("layers", 0);
    if (!compiled) {  // one exchanged row: the features x and the SPHCs chi (2l+1 components per degree)
      const json &config = meta.at("model_config");
      halo_width = config.at("features").get<int>();
      for (int l : config.at("degrees").get<std::vector<int>>()) halo_width += 2 * l + 1;
    }
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
  // per-layer exchange over one cutoff of ghosts, unless the deep shell is asked for
  halo = !package && !single_domain && !exchange_shell && !nonlocal;
  comm_forward = comm_reverse = halo ? halo_width : 0;
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
    else if (halo)
      utils::logmesg(lmp, "pair so3krates: per-layer exchange of {} numbers per atom over a ghost shell of {} A (+ skin) "
                          "on {} rank(s)\n", halo_width, cutoff, comm->nprocs);
    else
      utils::logmesg(lmp, "pair so3krates: ghost shell of {} A (+ skin) on {} rank(s)\n", ghost_cutoff, comm->nprocs);
  }
}

double PairSo3krates::init_one(int, int)
{
  // a package's neighbour list needs the pair cutoff only; its ghost shell is set in init_style
  return single_domain || package || halo ? cutoff : ghost_cutoff;
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
  else if (halo)
    compute_halo(nlocal, nlocal + atom->nghost);
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

static std::vector<torch::Tensor> call_raw(torch::jit::Module &module, const std::string &method,
                                           std::vector<torch::jit::IValue> inputs, Error *error, int ntotal, int nlocal,
                                           bigint step)
{
  std::vector<torch::Tensor> out;
  try {
    auto result = module.get_method(method)(std::move(inputs));
    if (result.isTensor()) {
      out.push_back(result.toTensor());
    } else {
      for (const auto &value : result.toTuple()->elements()) out.push_back(value.toTensor());
    }
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

static std::vector<torch::Tensor> call(torch::jit::Module &module, const std::string &method,
                                       std::vector<torch::jit::IValue> inputs, Error *error, int ntotal, int nlocal,
                                       bigint step)
{
  auto out = call_raw(module, method, std::move(inputs), error, ntotal, nlocal, step);
  for (auto &value : out) value = value.to(torch::kCPU, torch::kFloat64).contiguous();
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

void PairSo3krates::compute_halo(int nlocal, int ntotal)
{
  // Every rank takes part in every exchange (they are collective), with or without atoms; only
  // ranks with owned atoms run the model. Forward: layer t's input rows are the owners' outputs
  // of layer t - 1 (exchange_forward), the readout reads the last layer's owned rows. Backward,
  // layer by layer: the gradients of a layer's owned output rows give those of its input rows,
  // ghost rows included, which exchange_reverse sums into their owners: that is the gradient of
  // the layer before's owned outputs. The layers read the geometry as leaves of their own: its
  // gradients are summed over the layers and taken back to the positions once (gradients taken
  // at rbf and at phi, on which rbf depends, would count that path twice).
  const bool active = nlocal > 0;
  const bigint step = update->ntimestep;
  torch::Tensor positions, species, idx_i, idx_j, rbf, sph, phi, chi0;
  std::vector<torch::Tensor> geometry;        // rbf, sph, phi as functions of the positions (then chi0's owned rows)
  std::vector<torch::Tensor> geometry_grads;  // their gradients, summed over the layers
  torch::TensorOptions real;
  int features = 0;
  torch::Tensor owned_rows;  // (nlocal, width) rows to send to the ghosts
  if (active) {
    positions = torch::from_blob(&atom->x[0][0], {ntotal, 3}, torch::kFloat64).to(device, torch::kFloat64, false, true);
    positions.requires_grad_(true);
    species = species_tensor(atom->type, ntotal, species_of_type).to(device);
    auto start = call_raw(module, "halo_start", {positions, species, (int64_t) nlocal}, error, ntotal, nlocal, step);
    idx_i = start[0], idx_j = start[1], chi0 = start[6];
    for (int k = 2; k < 5; k++) geometry.push_back(start[k]);
    rbf = start[2].detach().requires_grad_(true);
    sph = start[3].detach().requires_grad_(true);
    phi = start[4].detach().requires_grad_(true);
    features = (int) start[5].size(1);
    real = torch::TensorOptions().dtype(start[5].scalar_type()).device(device);
    // x0 depends on the species only (right on ghost rows too), chi0 is exact on the owned rows
    owned_rows = torch::cat({start[5], chi0}, 1).slice(0, 0, nlocal);
  }
  std::vector<torch::Tensor> x_in, chi_in, x_out, chi_out;
  for (int t = 0; t < layers; t++) {
    torch::Tensor rows = exchange_forward(owned_rows, nlocal, ntotal);
    if (!active) continue;
    rows = rows.to(real);
    x_in.push_back(rows.slice(1, 0, features).contiguous().requires_grad_(true));
    chi_in.push_back(rows.slice(1, features, halo_width).contiguous().requires_grad_(true));
    auto out = call_raw(module, "halo_layer", {(int64_t) t, x_in[t], chi_in[t], rbf, sph, phi, idx_i, idx_j, (int64_t) nlocal},
                        error, ntotal, nlocal, step);
    x_out.push_back(out[0]);
    chi_out.push_back(out[1]);
    owned_rows = torch::cat({out[0], out[1]}, 1).slice(0, 0, nlocal);
  }

  torch::Tensor energy, atom_energies, grad_owned;
  if (active) {
    atom_energies = call_raw(module, "halo_readout", {x_out.back(), species, (int64_t) nlocal}, error, ntotal, nlocal,
                             step)[0];
    energy = atom_energies.to(torch::kFloat64).sum();  // summed in float64 whatever the model dtype
    torch::Tensor gx = torch::autograd::grad({energy}, {x_out.back()}, {}, true)[0].slice(0, 0, nlocal);
    grad_owned = torch::cat({gx, torch::zeros({nlocal, halo_width - features}, real)}, 1);
    for (const auto &g : {rbf, sph, phi}) geometry_grads.push_back(torch::zeros_like(g));
  }
  for (int t = layers - 1; t >= 0; t--) {
    torch::Tensor rows;
    if (active) {
      std::vector<torch::Tensor> inputs = {x_in[t], chi_in[t], rbf, sph, phi};
      auto grads = torch::autograd::grad({x_out[t].slice(0, 0, nlocal), chi_out[t].slice(0, 0, nlocal)}, inputs,
                                         {grad_owned.slice(1, 0, features), grad_owned.slice(1, features, halo_width)},
                                         true, false, true);
      for (size_t k = 0; k < 3; k++)
        if (grads[2 + k].defined()) geometry_grads[k] += grads[2 + k];
      rows = torch::cat({grads[0].defined() ? grads[0] : torch::zeros_like(x_in[t]),
                         grads[1].defined() ? grads[1] : torch::zeros_like(chi_in[t])}, 1);
    }
    grad_owned = exchange_reverse(rows, nlocal, ntotal);
    if (active) grad_owned = grad_owned.to(real);
  }
  if (!active) return;
  if (chi0.requires_grad()) {  // the averaged SPHC start (neurips2022) depends on the positions
    geometry.push_back(chi0.slice(0, 0, nlocal));
    geometry_grads.push_back(grad_owned.slice(1, features, halo_width));
  }
  torch::Tensor forces = torch::zeros({ntotal, 3}, torch::kFloat64);
  std::vector<torch::Tensor> outputs, grads;
  for (size_t k = 0; k < geometry.size(); k++)
    if (geometry[k].requires_grad()) {  // no pairs at all: nothing depends on the positions
      outputs.push_back(geometry[k]);
      grads.push_back(geometry_grads[k]);
    }
  if (!outputs.empty()) {
    auto g = torch::autograd::grad(outputs, {positions}, grads, false, false, true)[0];
    if (g.defined()) forces = -g.to(torch::kCPU, torch::kFloat64).contiguous();
  }
  accumulate(energy.reshape({1}).to(torch::kCPU, torch::kFloat64), forces,
             atom_energies.detach().to(torch::kCPU, torch::kFloat64).contiguous(), ntotal, nlocal);
  if (vflag_global) add_position_virial(forces, ntotal);
}

torch::Tensor PairSo3krates::exchange_forward(const torch::Tensor &owned, int nlocal, int ntotal)
{
  // owned: (nlocal, width) rows of the owned atoms (undefined when there are none); returns
  // (ntotal, width) float64 rows on the host, the ghost rows copied from their owners
  const double start = platform::walltime();
  halo_rows.assign((size_t) std::max(ntotal, 1) * halo_width, 0.0);
  if (nlocal > 0) {
    torch::Tensor host = owned.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    std::memcpy(halo_rows.data(), host.data_ptr<double>(), sizeof(double) * (size_t) nlocal * halo_width);
  }
  comm->forward_comm(this);
  torch::Tensor rows = torch::from_blob(halo_rows.data(), {ntotal, halo_width}, torch::kFloat64).clone();
  exchange_seconds += platform::walltime() - start;
  exchanges++;
  return rows;
}

torch::Tensor PairSo3krates::exchange_reverse(const torch::Tensor &rows, int nlocal, int ntotal)
{
  // rows: (ntotal, width) gradients of owned and ghost rows (undefined when this rank has no
  // owned atoms); returns the owned rows with what reached their ghost images summed in
  const double start = platform::walltime();
  halo_rows.assign((size_t) std::max(ntotal, 1) * halo_width, 0.0);
  if (rows.defined() && ntotal > 0) {
    torch::Tensor host = rows.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    std::memcpy(halo_rows.data(), host.data_ptr<double>(), sizeof(double) * (size_t) ntotal * halo_width);
  }
  comm->reverse_comm(this);
  torch::Tensor owned = torch::from_blob(halo_rows.data(), {nlocal, halo_width}, torch::kFloat64).clone();
  exchange_seconds += platform::walltime() - start;
  exchanges++;
  return owned;
}

void PairSo3krates::finish()
{
  // The run summary's "Pair" time includes the exchanges, and LAMMPS's memory report leaves out
  // libtorch's: say both (slowest rank, largest rank).
  double peak = 0.0, most_peak = 0.0;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.compare(0, 6, "VmHWM:") == 0) peak = std::stod(line.substr(6)) / 1024.0;  // kB -> MB
  MPI_Allreduce(&peak, &most_peak, 1, MPI_DOUBLE, MPI_MAX, world);
  double most = 0.0;
  MPI_Allreduce(&exchange_seconds, &most, 1, MPI_DOUBLE, MPI_MAX, world);
  if (comm->me == 0) {
    if (halo && exchanges > 0)
      utils::logmesg(lmp, "pair so3krates: per-layer exchange took {:.4g} s in {} exchanges (slowest rank, waiting "
                          "included)\n", most, exchanges);
    if (most_peak > 0.0) utils::logmesg(lmp, "pair so3krates: peak memory {:.0f} MB (largest rank)\n", most_peak);
  }
  exchange_seconds = 0.0;
  exchanges = 0;
}

int PairSo3krates::pack_forward_comm(int n, int *list, double *buf, int, int *)
{
  // features are not coordinates: periodic images carry their owner's rows unchanged
  for (int k = 0; k < n; k++)
    std::memcpy(buf + (size_t) k * halo_width, &halo_rows[(size_t) list[k] * halo_width], sizeof(double) * halo_width);
  return n * halo_width;
}

void PairSo3krates::unpack_forward_comm(int n, int first, double *buf)
{
  std::memcpy(&halo_rows[(size_t) first * halo_width], buf, sizeof(double) * (size_t) n * halo_width);
}

int PairSo3krates::pack_reverse_comm(int n, int first, double *buf)
{
  std::memcpy(buf, &halo_rows[(size_t) first * halo_width], sizeof(double) * (size_t) n * halo_width);
  return n * halo_width;
}

void PairSo3krates::unpack_reverse_comm(int n, int *list, double *buf)
{
  for (int k = 0; k < n; k++) {
    double *row = &halo_rows[(size_t) list[k] * halo_width];
    for (int c = 0; c < halo_width; c++) row[c] += buf[(size_t) k * halo_width + c];
  }
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
