"""The experiment_profiler grader, in three stages so the submission never runs where the grader is.

- plan (plan.py, in the grading container): writes the commands to run and their inputs;
- run (the evaluator, in a separate submission sandbox without the grader, the private data or
  the grader's output folder): runs them;
- check (check.py, in the grading container): compares their results with expectations
  computed from the public data (expectations.py) and writes grade.json.
"""
