import sys

from .util.pyinstall import packages_dir, qgis_profile_dir, use_packages_dir

# the packages the plugin installed for QGIS serve the command line too (install_deps puts them there)
use_packages_dir(packages_dir(qgis_profile_dir()))

from .cli.main import main  # noqa: E402

sys.exit(main())
