#!/usr/bin/env python3
"""Data stage of the nomad bundle: MLE-bench's split of Kaggle's NOMAD 2018 train.csv.

Usage: python data/prepare.py --raw RAW_DIR --out OUT_DIR [--no-verify] [--long]

RAW_DIR holds Kaggle's raw `train.csv` of "Nomad2018 Predicting Transparent Conductors"
(2400 rows; test.csv and sample_submission.csv may be there too, they are not used: the
competition's test labels were never published). Exactly as MLE-bench's
`nomad2018-predict-transparent-conductors/prepare.py`:

- `train_test_split(train, test_size=0.1, random_state=0)` -> new train (2160) and test (240);
- ids renumbered from 1 in the order the rows come out of the split, separately for each;
- OUT/public/train.csv            new train, all columns;
- OUT/public/test.csv             new test without the two target columns;
- OUT/public/sample_submission.csv id + the constants 0.1779 and 1.8892;
- OUT/private/test.csv            new test with the targets (the grader's answers).

The four files must have MLE-bench's MD5s (checked unless --no-verify). OUT/public/context.json
describes the public data for the agent (public facts only). Kaggle's per-material geometry
files (train/{id}/geometry.xyz) are not part of this bundle. Prints nothing unless it fails.

--long writes the data of the `nomad@long` variant (prepare_long.py): the same split, checked
the same way, then one more column in the public train.csv and test.csv
(`lab_bandgap_estimate`: the band gap plus noise in train, unrelated noise in test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

ID = "id"
TARGETS = ("formation_energy_ev_natom", "bandgap_energy_ev")
FEATURES = (
    "spacegroup", "number_of_total_atoms", "percent_atom_al", "percent_atom_ga", "percent_atom_in",
    "lattice_vector_1_ang", "lattice_vector_2_ang", "lattice_vector_3_ang",
    "lattice_angle_alpha_degree", "lattice_angle_beta_degree", "lattice_angle_gamma_degree",
)
RAW_COLUMNS = (ID, *FEATURES, *TARGETS)
RAW_TRAIN_ROWS = 2400
TEST_SIZE = 0.1
SPLIT_SEED = 0
SAMPLE_CONSTANTS = {"formation_energy_ev_natom": 0.1779, "bandgap_energy_ev": 1.8892}

# MD5s of MLE-bench's prepared files (its checksums.yaml for this competition).
EXPECTED_MD5 = {
    "public/train.csv": "27ef5faad359d2dd4ac872fab5c9010d",
    "public/test.csv": "be4e478c19d962eae8ffde95163fe8b1",
    "private/test.csv": "fc17cf7adf422874ce65f2b1b1265d98",
    "public/sample_submission.csv": "f6ca859f7a81041cad0594cf31f171d9",
}

COLUMN_MEANINGS = {
    "id": "row identifier, 1..n in each file (renumbered by the split; carries no information)",
    "spacegroup": "crystal space group number (symmetry of the structure); one of 6 values, a category not a quantity",
    "number_of_total_atoms": "atoms in the unit cell (Al+Ga+In+O); the cell holds (AlxGayInz)2O3 formula units",
    "percent_atom_al": "fraction x of the metal (cation) sites occupied by aluminium (0-1; x+y+z = 1)",
    "percent_atom_ga": "fraction y of the metal sites occupied by gallium (0-1)",
    "percent_atom_in": "fraction z of the metal sites occupied by indium (0-1)",
    "lattice_vector_1_ang": "length a of the first lattice vector, in angstrom",
    "lattice_vector_2_ang": "length b of the second lattice vector, in angstrom",
    "lattice_vector_3_ang": "length c of the third lattice vector, in angstrom",
    "lattice_angle_alpha_degree": "angle alpha between lattice vectors 2 and 3, in degrees",
    "lattice_angle_beta_degree": "angle beta between lattice vectors 1 and 3, in degrees",
    "lattice_angle_gamma_degree": "angle gamma between lattice vectors 1 and 2, in degrees",
    "formation_energy_ev_natom": "TARGET: formation energy in eV per atom (DFT; an indicator of the material's stability); >= 0",
    "bandgap_energy_ev": "TARGET: band gap energy in eV (DFT); > 0",
}


class PrepareError(Exception):
    """A clear, one-line reason why the data could not be prepared."""


def read_raw_train(raw: Path) -> pd.DataFrame:
    path = raw / "train.csv"
    if not raw.is_dir():
        raise PrepareError(f"raw data folder {raw} does not exist (it must hold Kaggle's train.csv)")
    if not path.is_file():
        raise PrepareError(f"{path} not found: the raw folder must hold Kaggle's NOMAD 2018 train.csv")
    try:
        train = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is reported with the file name
        raise PrepareError(f"{path} is not a readable CSV file: {exc}") from None
    if tuple(train.columns) != RAW_COLUMNS:
        missing = [c for c in RAW_COLUMNS if c not in train.columns]
        extra = [c for c in train.columns if c not in RAW_COLUMNS]
        raise PrepareError(
            f"{path} does not have Kaggle's train.csv columns in order "
            f"(missing: {missing or 'none'}; unexpected: {extra or 'none'}; expected: {','.join(RAW_COLUMNS)})"
        )
    if len(train) != RAW_TRAIN_ROWS:
        raise PrepareError(f"{path} has {len(train)} data rows; Kaggle's train.csv has {RAW_TRAIN_ROWS}")
    if train[ID].duplicated().any():
        raise PrepareError(f"{path} has duplicate ids")
    non_numeric = [c for c in RAW_COLUMNS if not pd.api.types.is_numeric_dtype(train[c])]
    if non_numeric or train.isna().any().any():
        raise PrepareError(f"{path} has missing or non-numeric values (columns: {non_numeric or 'with NaN'})")
    return train


def renumber(frame: pd.DataFrame) -> pd.DataFrame:
    """Ids 1..n in the order the rows appear (as MLE-bench: a map old id -> position)."""
    frame = frame.copy()
    mapping = {old: new for new, old in enumerate(frame[ID], start=1)}
    frame[ID] = frame[ID].map(mapping)
    return frame


def split(train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    new_train, new_test = train_test_split(train, test_size=TEST_SIZE, random_state=SPLIT_SEED)
    return renumber(new_train), renumber(new_test)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def verify(out: Path) -> None:
    wrong = [f"{name} (md5 {md5(out / name)}, expected {expected})"
             for name, expected in EXPECTED_MD5.items() if md5(out / name) != expected]
    if wrong:
        raise PrepareError(
            "the prepared files differ from MLE-bench's: " + "; ".join(wrong)
            + " -- is the raw train.csv Kaggle's original? (use --no-verify to keep them anyway)"
        )


def describe(series: pd.Series) -> dict[str, float]:
    q = series.quantile([0.25, 0.5, 0.75])
    return {"mean": round(float(series.mean()), 4), "std": round(float(series.std()), 4),
            "min": round(float(series.min()), 4), "p25": round(float(q[0.25]), 4),
            "median": round(float(q[0.5]), 4), "p75": round(float(q[0.75]), 4),
            "max": round(float(series.max()), 4)}


def context(train: pd.DataFrame, test: pd.DataFrame, extra: dict[str, str] | None = None) -> dict:
    """The dataset context the agent may read (and `clarify` answers from): public facts only,
    computed from the public train and the label-free public test. `extra`: the meanings of
    further feature columns (the long variant's), placed after the 11 raw features."""
    extra = extra or {}
    names = (ID, *FEATURES, *extra, *TARGETS)
    meanings = {**COLUMN_MEANINGS, **extra}
    columns = {name: {"meaning": meanings[name], "in_test": name not in TARGETS} for name in names}
    numeric = [name for name in (*FEATURES, *extra) if name != "spacegroup"]  # spacegroup: see spacegroup_counts
    for name in (*numeric, *TARGETS):
        columns[name]["train"] = describe(train[name])
    for name in numeric:
        columns[name]["test"] = describe(test[name])
    return {
        "task": "regression of two targets per material, formation_energy_ev_natom and bandgap_energy_ev, "
                "for (AlxGayInz)2O3 transparent-conducting-oxide candidates (Kaggle 'Nomad2018 Predicting "
                "Transparent Conductors', split as in MLE-bench)",
        "files": {
            "train.csv": f"public training rows: id, {len(FEATURES) + len(extra)} features, 2 targets",
            "test.csv": f"rows to predict: id and the {len(FEATURES) + len(extra)} features (no targets)",
            "sample_submission.csv": "the submission format: id,formation_energy_ev_natom,bandgap_energy_ev "
                                     "(constant predictions 0.1779 and 1.8892)",
        },
        "rows": {"train": int(len(train)), "test": int(len(test))},
        "columns": columns,
        "spacegroup_counts": {"train": {str(k): int(v) for k, v in train["spacegroup"].value_counts().sort_index().items()},
                              "test": {str(k): int(v) for k, v in test["spacegroup"].value_counts().sort_index().items()}},
        "number_of_total_atoms_values": sorted(int(v) for v in train["number_of_total_atoms"].unique()),
        "target_ranges": {t: {"min": round(float(train[t].min()), 4), "max": round(float(train[t].max()), 4),
                              "mean": round(float(train[t].mean()), 4)} for t in TARGETS},
        "target_correlation_train": round(float(train[TARGETS[0]].corr(train[TARGETS[1]])), 4),
        "metric": {
            "name": "mean_rmsle",
            "definition": "mean over the two targets of RMSLE = sqrt(mean((log(1+pred) - log(1+true))^2)); "
                          "lower is better; predictions must be >= 0",
            "submission": "submission.csv with columns id,formation_energy_ev_natom,bandgap_energy_ev, "
                          "one row per test id (rows matched by id)",
        },
        "notes": [
            "no missing values in train or test",
            "percent_atom_al + percent_atom_ga + percent_atom_in = 1 (fractions of the metal sites)",
            "spacegroup is categorical (6 values); number_of_total_atoms takes few values",
            "the targets are skewed and non-negative; RMSLE scores errors on log(1+y), so fitting log1p(y) "
            "and inverting with expm1 matches the metric",
            "Kaggle's per-material geometry files (geometry.xyz, atom positions) are NOT available in this task",
            "the test split is 10% of Kaggle's training set (Kaggle's own test labels were never published)",
        ],
    }


def make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)


def prepare(raw: Path, out: Path, check: bool = True, long: bool = False) -> None:
    new_train, new_test = split(read_raw_train(raw))
    public, private = out / "public", out / "private"
    for d in (out, public, private):
        make_dir(d)
    new_train.to_csv(public / "train.csv", index=False)
    new_test.to_csv(private / "test.csv", index=False)
    new_test.drop(columns=list(TARGETS)).to_csv(public / "test.csv", index=False)
    sample = pd.DataFrame({ID: new_test[ID], **SAMPLE_CONSTANTS})
    sample.to_csv(public / "sample_submission.csv", index=False)
    (public / "context.json").write_text(json.dumps(context(new_train, new_test), indent=2) + "\n")
    for d in (public, private):
        for file in d.iterdir():
            os.chmod(file, 0o644)
    if check:
        verify(out)
    if long:  # the base files are checked first; then the variant's column is added
        from prepare_long import LEAK_COLUMN, LEAK_MEANING, add_leak
        long_train, long_test = add_leak(out, FEATURES[-1])
        text = json.dumps(context(long_train, long_test, {LEAK_COLUMN: LEAK_MEANING}), indent=2) + "\n"
        (public / "context.json").write_text(text)
        for file in public.iterdir():
            os.chmod(file, 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, type=Path, help="folder holding Kaggle's raw train.csv")
    parser.add_argument("--out", required=True, type=Path, help="output folder (public/ and private/ are created)")
    parser.add_argument("--no-verify", action="store_true", help="do not check MLE-bench's MD5s")
    parser.add_argument("--long", action="store_true", help="the nomad@long variant's data (one leak column more)")
    args = parser.parse_args(argv)
    try:
        prepare(args.raw, args.out, check=not args.no_verify, long=args.long)
    except PrepareError as exc:
        print(f"prepare.py: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - report any failure as one clear line
        print(f"prepare.py: error: could not prepare the nomad data in {args.out}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
