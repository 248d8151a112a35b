"""`python -m medadapt ...` is the `medadapt` console script."""
from medadapt.cli import main_exit

main_exit()
