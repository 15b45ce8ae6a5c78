"""Package names and versions by each manager's own grammar: the one check behind the package form,
the template import, the bucket import and the wizard's additional packages.

- apt: a Debian binary package name (Debian policy §5.6.1: ``[a-z0-9][a-z0-9+.-]+``), optionally
  ``:arch`` (multiarch, as ``apt-get install name:arch=version`` takes it); the version per §5.6.12
  (``[epoch:]upstream[-revision]``), with apt's ``*`` wildcard.
- pip: a PEP 508 requirement parsed by ``packaging`` (name, extras, version specifiers); a URL
  (``name @ url``), a path or an environment marker is refused: pip would fetch or run what it names.
- npm: npm's name rules (validate-npm-package-name): lowercase, at most 214 characters, an optional
  ``@scope/``, no leading ``.`` or ``_``, URL-safe characters only; ``owner/repo``, git URLs, paths
  and tarballs are refused (npm would fetch them from elsewhere than the registry).

Errors are ``ValueError`` with a lower-case message naming the value (callers add the location).
"""
from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

MAX_NAME_LENGTH = 214  # npm's limit, and below the TemplatePackage.name column (255)

# dpkg-architecture -L's release architectures, plus the two pseudo-architectures apt takes.
DEBIAN_ARCHITECTURES = ("amd64", "arm64", "armel", "armhf", "i386", "mips64el", "ppc64el", "riscv64", "s390x",
                        "all", "native")
APT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]+(?::(?:" + "|".join(DEBIAN_ARCHITECTURES) + r"))?$")
APT_VERSION_RE = re.compile(r"^(?:[0-9]+:)?[0-9A-Za-z*][A-Za-z0-9.+~\-*]*$")
# npm: encodeURIComponent leaves these alone; ~'!()* are refused for new packages.
NPM_NAME_RE = re.compile(r"^(?:@[a-z0-9\-][a-z0-9\-._]*/)?[a-z0-9\-][a-z0-9\-._]*$")
NPM_VERSION_RE = re.compile(r"^[~^]?[0-9A-Za-z][0-9A-Za-z.+\-]*$")
NPM_RESERVED = {"node_modules", "favicon.ico"}
# What would make a package manager reach elsewhere than its registry.
_ELSEWHERE = re.compile(r"://|^[./~\\]|\.\.|^git[+@]|\.(tgz|tar(\.gz)?|whl|zip)$", re.IGNORECASE)


def check_name(manager: str, name: str) -> None:
    """Raise ValueError when ``name`` is not a registry package name of ``manager`` (apt, pip, npm)."""
    if not name:
        raise ValueError("a package name is required")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"“{name[:40]}…” is longer than {MAX_NAME_LENGTH} characters")
    if _ELSEWHERE.search(name):
        raise ValueError(f"“{name}” is a path or URL, not a package name ({manager} installs from its registry only)")
    if manager == "apt":
        if not APT_NAME_RE.match(name):
            raise ValueError(f"“{name}” is not a Debian package name (lowercase letters, digits, + - and ., "
                             "at least 2 characters, starting with a letter or digit)")
    elif manager == "pip":
        _pip_requirement(name)
    elif manager == "npm":
        bare = name.split("/", 1)[1] if name.startswith("@") and "/" in name else name
        if not NPM_NAME_RE.match(name) or bare in NPM_RESERVED or bare.startswith((".", "_")):
            hint = " (a GitHub “owner/repo” is not an npm package)" if "/" in name and not name.startswith("@") else ""
            raise ValueError(f"“{name}” is not an npm package name{hint}: lowercase letters, digits, - . _ "
                             "and an optional @scope/, not starting with . or _")
    else:
        raise ValueError(f"unknown package manager “{manager}”")


def check_version(manager: str, version: str) -> None:
    """Raise ValueError when ``version`` is not a version ``manager`` pins with ``==`` (apt ``=``, npm ``@``)."""
    if len(version) > 100:
        raise ValueError(f"“{version[:40]}…” is longer than 100 characters")
    if manager == "pip":
        try:
            SpecifierSet(f"=={version}")
        except InvalidSpecifier:
            raise ValueError(f"“{version}” is not a PEP 440 version") from None
        return
    pattern = APT_VERSION_RE if manager == "apt" else NPM_VERSION_RE
    if not pattern.match(version):
        raise ValueError(f"“{version}” is not a valid {manager} version")


def check_package(manager: str, name: str, version: str | None) -> None:
    """Raise ValueError unless ``name`` (and ``version``, when given) is a package ``manager`` installs from its registry."""
    check_name(manager, name)
    if version:
        if manager == "pip" and _pip_requirement(name).specifier:
            raise ValueError(f"“{name}” already says which versions; leave the version out")
        check_version(manager, version)


def _pip_requirement(text: str) -> Requirement:
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        raise ValueError(f"“{text}” is not a PEP 508 requirement (like requests or requests[socks]>=2)") from None
    if requirement.url:
        raise ValueError(f"“{text}” installs from a URL; name a package on PyPI instead")
    if requirement.marker:
        raise ValueError(f"“{text}” has an environment marker; name the package and its version only")
    return requirement
