"""Map the repository's top-level folders onto subpackages of the import package `cardstation`.

DESIGN.md keeps the architecture visible as folders (drivers/, personalization/, ...) while the
installed import package stays `cardstation.*`, so nothing generic like `server` lands in
site-packages. Subpackages are discovered, so adding a folder with an __init__.py is enough.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "cardstation": "cardstation",
    "cardstation.drivers": "drivers",
    "cardstation.personalization": "personalization",
    "cardstation.protos": "protos",
    "cardstation.server": "server",
    "cardstation.console": "console",
    "cardstation.simulators": "simulators",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for name, folder in FOLDERS.items():
    package_dir[name] = folder
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(folder))

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "cardstation": ["samples/*.toml"],
        "cardstation.protos": ["**/*.proto"],
        "cardstation.simulators": ["**/*.json"],
        "cardstation.personalization.face": ["layouts/*.json"],
        "cardstation.console": ["templates/*.html", "static/*", "static/vendor/*", "locale/*.po"],
        "cardstation.install": ["templates/*"],
    },
)
