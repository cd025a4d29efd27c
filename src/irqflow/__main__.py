from irqflow.cli import main

raise SystemExit(main())
