# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A fixture course notebook
#
# The instructor notebook of the assignment tests: two graded exercises and one open question, marked up as the
# course notebooks are (docs/teaching.md). Its checks come from `fixture_exercises.py` beside it.

# %% nbgrader={"grade": false, "grade_id": "setup_fixture", "locked": true, "schema_version": 3, "solution": false, "task": false}
import fixture_exercises  # noqa: F401  (registers top1_index and l2_normalise)
import torch

from cirlib.assignment import check

# %% [markdown]
# ## Graded exercises

# %% nbgrader={"grade": false, "grade_id": "top1_index", "locked": false, "schema_version": 3, "solution": true, "task": false}
def top1_index(scores):
    """The column of each row's highest score of the (Q, G) tensor ``scores``, as a (Q,) int64 tensor; among
    tied scores, the lowest column."""
    ### BEGIN SOLUTION
    columns = torch.arange(scores.shape[1]).expand_as(scores)
    best = scores == scores.max(dim=1, keepdim=True).values
    return torch.where(best, columns, scores.shape[1]).min(dim=1).values
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "top1_index_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check("top1_index", top1_index)
### BEGIN HIDDEN TESTS
check("top1_index", top1_index, hidden=True)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "l2_normalise", "locked": false, "schema_version": 3, "solution": true, "task": false}
def l2_normalise(vectors):
    """Each row of the (N, D) tensor ``vectors`` divided by its L2 norm; a row of zeros stays zeros."""
    ### BEGIN SOLUTION
    norms = vectors.norm(dim=-1, keepdim=True)
    return vectors / norms.clamp_min(1e-12)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "l2_normalise_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check("l2_normalise", l2_normalise)
### BEGIN HIDDEN TESTS
check("l2_normalise", l2_normalise, hidden=True)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_ties", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# Why does the tie rule matter for Recall@K?
#
# ### BEGIN SOLUTION
# Tied scores leave the order undecided; without a rule, R@K depends on the sort's accident.
# ### END SOLUTION
