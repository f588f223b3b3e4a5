"""The harness: Hydra entry point and one trial (build, train, evaluate, record). Imports workloads and optimizers."""
