"""Virtual environments for the peer models (so3krates-torch, MACE, NequIP).

Their pins conflict (mace-torch pins e3nn==0.4.4, nequip needs e3nn>=0.6), so each group gets
its own venv. To avoid downloading torch again (several GB), every venv reuses the torch of the
interpreter running this module: a .pth file appends the host's site-packages to the venv's
sys.path. Entries from .pth files come after the venv's own site-packages, so a peer's own e3nn
(etc.) installed in the venv shadows the host's. pip also sees the host's distributions on that
path, takes torch as already installed and installs only what is missing; a constraints file
pinning torch to the host's version makes pip fail fast, instead of pulling another torch, if a
peer ever asks for a torch the host does not have.

    from peer_env import ensure_env
    python = ensure_env("mace", Path("/tmp/peer-envs"))   # path of the venv's python
"""

import json
import site
import subprocess
import sys
import time
import venv
from pathlib import Path

PEERS = {
    # mace-torch 0.3.16 pins e3nn==0.4.4; so3krates-torch 0.2.1 pins torch-geometric==2.7.0 and
    # resolves with e3nn 0.4.4 too, so both share one venv (checked with pip's resolver).
    "mace": ["mace-torch==0.3.16", "so3krates-torch==0.2.1"],
    # nequip 0.19.1 needs e3nn>=0.6, which mace-torch's pin excludes: a venv of its own.
    "nequip": ["nequip==0.19.1"],
}

STAMP = "peer-requirements.json"  # what the venv was built with; a different list rebuilds it


def _host_torch_version():
    from importlib.metadata import version

    return version("torch").split("+")[0]  # "2.9.1+cu128" -> "2.9.1" (== also matches local tags)


def ensure_env(name, root):
    """Create (or reuse) the venv root/name with the requirements of PEERS[name]; return its python."""
    requirements = PEERS[name]
    env = Path(root) / name
    python = env / "bin" / "python"
    stamp = {"requirements": requirements, "host_site_packages": site.getsitepackages()}
    stamp_file = env / STAMP
    if python.exists() and stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp:
        return python

    # venv.create uses the base interpreter of sys.executable (also when that is itself a venv).
    venv.create(env, clear=True, symlinks=True, with_pip=True)
    env_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(env_site) / "host-site-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    constraints = env / "host-constraints.txt"
    constraints.write_text(f"torch=={_host_torch_version()}\n")

    print(f"installing {' '.join(requirements)} into {env} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), *requirements], check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"pip could not install {requirements} into {env} (exit {result.returncode}); see pip's output above"
        )
    stamp_file.write_text(json.dumps(stamp))  # written last: an interrupted install is redone
    print(f"{name} environment ready in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return python


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("names", nargs="*", default=list(PEERS))
    args = parser.parse_args()
    for peer in args.names:
        print(ensure_env(peer, args.root))
