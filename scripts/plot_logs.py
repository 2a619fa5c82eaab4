#!/usr/bin/env python3
"""Plot one or more main.log files (llm.c format plus our nz: lines) into one PNG.

usage: python3 scripts/plot_logs.py -o curves.png LABEL=path/to/main.log [LABEL=path/to/main.log ...]
       (a bare path uses its directory name as the label)

Panels: train loss (trl), val loss (tel), HellaSwag accuracy (eval) and the mean attention nonzero
fraction (nz). Panels with no data in any log are left out. Needs matplotlib.
"""
import argparse
import os
import sys


def parse_log(path):
    series = {"trl": [], "tel": [], "eval": [], "nz": []}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if not fields or not fields[0].startswith("s:"):
                continue
            try:
                step = int(fields[0][2:])
            except ValueError:
                continue
            for field in fields[1:]:
                key, _, value = field.partition(":")
                if key in series:
                    try:
                        series[key].append((step, float(value)))
                    except ValueError:
                        pass
    return series


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="+", help="LABEL=main.log or main.log (the last '=' separates the label)")
    ap.add_argument("-o", "--output", default="curves.png", help="output PNG")
    ap.add_argument("--smooth", type=int, default=1, help="moving average window for the train loss")
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: matplotlib is not installed (pip install matplotlib)")

    runs = []
    for spec in args.logs:
        label, sep, path = spec.rpartition("=")
        if not sep:
            path, label = spec, os.path.basename(os.path.dirname(os.path.abspath(spec)))
        if not os.path.isfile(path):
            sys.exit(f"error: log file {path} does not exist")
        runs.append((label, parse_log(path)))

    panels = [("trl", "train loss"), ("tel", "val loss"), ("eval", "HellaSwag accuracy"), ("nz", "attention nonzero fraction")]
    panels = [(k, t) for k, t in panels if any(series[k] for _, series in runs)]
    if not panels:
        sys.exit("error: the logs hold no s:N lines")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        for label, series in runs:
            pts = series[key]
            if not pts:
                continue
            steps = [s for s, _ in pts]
            vals = [v for _, v in pts]
            if key == "trl" and args.smooth > 1:
                w = args.smooth
                vals = [sum(vals[max(0, i - w + 1):i + 1]) / len(vals[max(0, i - w + 1):i + 1]) for i in range(len(vals))]
            ax.plot(steps, vals, label=label, marker="o" if len(pts) < 30 else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
