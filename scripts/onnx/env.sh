# Sourced by the scripts/onnx/*.sh that need ONNX Runtime's side: the Python to run it with,
# and where the onnx package keeps its "light" test models.

# Set VENV (default .venv) to a virtual environment with scripts/onnx/requirements.txt,
# creating it if missing.
onnx_venv() {
  VENV=${VENV:-.venv}
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r scripts/onnx/requirements.txt
  fi
}

# The folder of the onnx package's light models (light_<name>.onnx) for the Python $1.
onnx_light_dir() {
  "$1" -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/light"))'
}
