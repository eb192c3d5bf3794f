"""``python -m mmea_pyg.cli``: the same as the ``mmea`` command."""

from mmea_pyg.cli.main import main

if __name__ == "__main__":
    main()
