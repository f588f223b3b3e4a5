"""Analysis of run records (see DESIGN.md's record format). Never imports torch, suite, workloads or optimizers."""
