from liveavatar.cli import main

raise SystemExit(main())
