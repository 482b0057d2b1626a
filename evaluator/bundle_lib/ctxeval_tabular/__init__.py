"""scikit-learn tabular tasks for ctxeval bundles (see ../README.md).

A task is described by a bundle's `tools/tabular_task.json` (`task.TabularTask`): classification or
regression, the metric it is graded by, the model families its tool accepts. Modules:
`params` (hyper-parameter specs and config validation), `families` (the model families),
`metrics`, `task`, `experiment` (the train_and_evaluate tool's work), `report` (the experiment log),
`tool` (the tool program's main), `grading` (the grader), `data` (the data stage's split and files),
`schema` (the JSON Schema and description a bundle.yaml declares for the tool).
"""
