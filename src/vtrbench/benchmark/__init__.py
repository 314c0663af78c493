"""The harness: config, the matrix of runs, runner, metrics, parameter counting, tuning, result files,
launchers and the command line. The registry is on the ground floor (`vtrbench.registry`)."""
