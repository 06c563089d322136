"""``python -m diffii_datasets`` runs the command-line interface."""

from diffii_datasets.cli import main

raise SystemExit(main())
