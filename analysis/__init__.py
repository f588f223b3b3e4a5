"""Analysis of run records (docs/architecture.md). Never imports torch, workloads or optimizers; of the harness
only `suite.layout`, the torch-free owner of the record layout."""
