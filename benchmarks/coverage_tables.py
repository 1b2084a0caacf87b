"""Markdown tables from the per-drill CSV of qingshui_trace_coverage (issue #16).

    /usr/bin/python3 benchmarks/coverage_tables.py benchmarks/results/trace_coverage_seed1.csv

A confident miss is a wrong label with P >= 0.9: a wrong source, or "no release" although
there was one (counted apart). Prints the program's tables (per month and stratum, all drills) and the same split for the
windows without rain, where the tracer's model (constant baseline, one day's hydraulics)
holds; a drill that threw is left out and counted.
"""

import sys

import pandas as pd

LEVELS = ["50", "80", "90", "95"]


def table(df, key, title, order=None):
    rows = []
    groups = df.groupby(key, sort=False)
    keys = list(order or []) + sorted(k for k in groups.groups if k not in (order or []))
    out = [
        f"| {title} | n | in 50% set | in 80% set | in 90% set | in 95% set | top-1 | top-3 "
        "| confident misses: wrong source / no release | median 90% set | median P(truth) | median query s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        if k not in groups.groups:
            continue
        g = groups.get_group(k)
        n = len(g)
        cov = " | ".join(f"{100 * g['in' + l].mean():.0f}%" for l in LEVELS)
        miss = g["confident_miss"].astype(bool)
        none = int((miss & (g["top_label"] == "no release")).sum())
        wrong = int(miss.sum()) - none
        out.append(
            f"| {k} | {n} | {cov} | {100 * (g['rank'] == 1).mean():.0f}% | "
            f"{100 * g['rank'].between(1, 3).mean():.0f}% | {wrong} ({100 * wrong / n:.0f}%) / "
            f"{none} ({100 * none / n:.0f}%) | "
            f"{g['size90'].median():.1f} | {g['p_truth'].median():.2f} | "
            f"{g['query_s'].median():.1f} |"
        )
    rows.append("\n".join(out))
    return "\n".join(rows)


def main(path):
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    failed = df["error"].notna() & (df["error"].astype(str) != "")
    if failed.any():
        print(f"{int(failed.sum())} drills failed and are left out.\n")
    df = df[~failed].copy()
    df["month"] = df["month"].map(lambda m: f"{int(m):02d}")
    df["all"] = "all"
    df["season"] = df["month"].map(lambda m: "wet (Jun-Sep)" if 6 <= int(m) <= 9 else "dry (Oct-May)")
    df["rain_window"] = df["rain"].map(lambda r: "rain" if r else "no rain")
    strata = [
        ("all", "all", None),
        ("season", "season", ["dry (Oct-May)", "wet (Jun-Sep)"]),
        ("mass_class", "COD mass", ["0.2-0.6 t", "0.6-1.7 t", "1.7-5 t"]),
        ("ratio", "NH3-N/TP ratio", ["typical", "atypical"]),
        ("distance", "km to first section", ["< 10 km", "10-30 km", ">= 30 km"]),
        ("river", "river", None),
    ]
    print("### All drills\n")
    print(table(df, "month", "month"))
    print()
    print(table(df, "rain_window", "rain in window", ["no rain", "rain"]))
    for key, title, order in strata:
        print()
        print(table(df, key, title, order))
    dry = df[~df["rain"].astype(bool)]
    print("\n### Windows without rain\n")
    print(table(dry, "month", "month"))
    for key, title, order in strata:
        print()
        print(table(dry, key, title, order))


if __name__ == "__main__":
    main(sys.argv[1])
