"""pyvenv.py — the Python packages of the test scripts, from one virtualenv.

    sys.path.insert(0, <this directory>); import pyvenv
    pyvenv.ensure("eos_check", ["avro.io", "confluent_kafka"],
                  ["confluent-kafka>=2.3,<3", "avro>=1.11,<2"])

If the running interpreter cannot import every module named, the virtualenv
$EXB_VENV (default <source dir>/.cache/venv) is created when missing, the
requirements are pip-installed into it when it lacks them, and the calling
script is executed again with the venv's python (once: if the modules are
still missing then, it exits naming them). Messages go to stderr.
"""

import importlib
import os
import subprocess
import sys

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
_REEXEC = "EXB_PYVENV_REEXEC"


def ensure(name, modules, requirements):
    try:
        for m in modules:
            importlib.import_module(m)
        os.environ.pop(_REEXEC, None)  # not inherited by what the script starts
        return
    except ImportError:
        pass
    venv = os.environ.get("EXB_VENV") or os.path.join(SRC, ".cache", "venv")
    py = os.path.join(venv, "bin", "python")
    if os.environ.get(_REEXEC):
        sys.exit("%s: %s still missing in %s" % (name, ", ".join(modules), venv))
    if not os.path.exists(py):
        print("%s: creating virtualenv %s" % (name, venv), file=sys.stderr, flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    probe = "import " + ", ".join(modules)
    if subprocess.call([py, "-c", probe], stderr=subprocess.DEVNULL) != 0:
        print("%s: pip install %s into %s" % (name, " ".join(requirements), venv),
              file=sys.stderr, flush=True)
        subprocess.check_call([py, "-m", "pip", "install", "--quiet"] + list(requirements))
    script = os.path.abspath(sys.argv[0])
    os.execve(py, [py, script] + sys.argv[1:], dict(os.environ, **{_REEXEC: "1"}))
