from vtrbench.benchmark.cli import main

raise SystemExit(main())
