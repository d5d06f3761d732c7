"""Reports: plots and HTML pages built from cost-model results."""
