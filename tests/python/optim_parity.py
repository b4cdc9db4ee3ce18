"""Reference side of the optimizer parity test (tests/test_optim.cpp, "optim: parity with torch").

Usage: /usr/bin/python3 optim_parity.py in.json out.json

in.json holds a list of cases. Each case names an optimizer ("SGD", "Adam", "AdamW"), a dtype
("float64" or "float32"), the optimizer's keyword arguments, the initial parameters (flat values
plus a shape) and, for every step, one gradient per parameter (null: the parameter has no grad on
that step, so torch skips it). out.json receives, per case, the parameters after every step.

Exit codes: 0 ok, 3 torch cannot be imported (the C++ test turns that into a failure with a hint).
"""
import json
import sys

try:
    import torch
except ImportError as e:  # the C++ side reports this; CI installs python3-torch
    print(f"optim_parity.py: cannot import torch ({e}); install python3-torch", file=sys.stderr)
    sys.exit(3)

DTYPES = {"float64": torch.float64, "float32": torch.float32}
OPTIMIZERS = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}


def run_case(case):
    dtype = DTYPES[case["dtype"]]
    params = [
        torch.tensor(p["values"], dtype=dtype).reshape(p["shape"]).requires_grad_(True)
        for p in case["params"]
    ]
    # foreach=False: the single-tensor path, whose arithmetic order the C++ kernels follow.
    opt = OPTIMIZERS[case["optimizer"]](params, foreach=False, **case["options"])
    history = []
    for grads in case["grads"]:
        opt.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            if g is not None:
                p.grad = torch.tensor(g, dtype=dtype).reshape(p.shape)
        opt.step()
        history.append([p.detach().reshape(-1).tolist() for p in params])
    return history


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = {"torch_version": torch.__version__, "results": [run_case(c) for c in cases]}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
