"""Language-model workloads: a Llama-style decoder at several scales on stdlib text, synthetic or shard data."""
