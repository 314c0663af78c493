"""The harness: registry, config, runner, metrics, parameter counting, results, command line."""
