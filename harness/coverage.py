"""Use-case coverage of the test library against the OCPP specification.

The catalogue (`harness/data/usecases.yaml`) lists, per OCPP version, the functional blocks
(2.0.1: Part 2 blocks A–P; 1.6: the feature profiles, their operations as use cases, plus
the security extension), the certification profile of every use case and which harness
roles can test it. A use case is *covered* for a version and role when at least one test
case of that version and role names it in `use_cases:` (or names one of its requirements,
`B01.FR.02` → B01, in `requirements:`). Matching ignores case, spaces and punctuation, so
a 1.6 case may say `Boot Notification` or `BootNotification`.

`coverage(cases, catalogue)` returns plain dicts (the `--json` shape):

    {"schema": ..., "cases": n, "unloadable": [...], "unmatched": [{case, ocpp, role, use_case}],
     "figures": {"2.0.1.csms": "34/119", ...},
     "versions": [{"ocpp", "roles": [{"role", "dut", "covered", "total", "percent",
                   "blocks": [{"block", "name", "covered", "total", "percent",
                               "use_cases": [{"id", "title", "profile", "cases": [...]}],
                               "gaps": [{"id", "title", "profile", "reason"}]}],
                   "profiles": [{"profile", "covered", "total", "percent"}]}]}]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

SCHEMA = "charger-harness/coverage/1"
ROLES = ("csms", "cs")
DUT_OF_ROLE = {"csms": "charging station", "cs": "CSMS"}
_REQ = re.compile(r"^([A-Z]\d{2})\.")


def norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


@dataclass
class UseCase:
    id: str
    title: str
    block: str
    profile: str
    roles: tuple[str, ...] = ROLES
    aliases: tuple[str, ...] = ()

    def keys(self) -> set[str]:
        return {norm(self.id), *(norm(a) for a in self.aliases)}


@dataclass
class Block:
    id: str
    name: str
    profile: str
    use_cases: list[UseCase] = field(default_factory=list)


@dataclass
class Version:
    ocpp: str
    blocks: list[Block]
    reasons: dict[str, str] = field(default_factory=dict)

    def use_cases(self) -> list[UseCase]:
        return [u for b in self.blocks for u in b.use_cases]

    def reason(self, uc: UseCase, role: str) -> str | None:
        block = next(b for b in self.blocks if b.id == uc.block)
        for key in (f"{uc.id}/{role}", uc.id, f"{block.id}/{role}", block.id, block.name):
            if key in self.reasons:
                return self.reasons[key]
        return None


Catalogue = dict[str, Version]


class CatalogueError(ValueError):
    pass


def default_catalogue_path() -> Path:
    return Path(str(resources.files("harness") / "data" / "usecases.yaml"))


def _roles(value: Any, where: str) -> tuple[str, ...]:
    roles = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise CatalogueError(f"{where}: unknown role(s) {bad}; use csms and/or cs")
    return roles


def parse_catalogue(doc: dict[str, Any]) -> Catalogue:
    if not isinstance(doc, dict) or not isinstance(doc.get("versions"), dict):
        raise CatalogueError("catalogue needs a `versions:` mapping")
    out: Catalogue = {}
    for ocpp, vdoc in doc["versions"].items():
        ocpp = str(ocpp)
        blocks: list[Block] = []
        for bid, bdoc in (vdoc.get("blocks") or {}).items():
            bid = str(bid)
            profile = str(bdoc.get("profile") or bdoc.get("name") or bid)
            broles = _roles(bdoc.get("roles", list(ROLES)), f"{ocpp}/{bid}")
            block = Block(bid, str(bdoc.get("name") or bid), profile)
            for uid, udoc in (bdoc.get("use_cases") or {}).items():
                if not isinstance(udoc, dict):
                    udoc = {"title": udoc}
                block.use_cases.append(UseCase(
                    id=str(uid), title=str(udoc.get("title") or uid), block=bid,
                    profile=str(udoc.get("profile") or profile),
                    roles=_roles(udoc["roles"], f"{ocpp}/{uid}") if "roles" in udoc else broles,
                    aliases=tuple(str(a) for a in udoc.get("aliases") or ())))
            blocks.append(block)
        reasons = {str(k): str(v) for k, v in (vdoc.get("reasons") or {}).items()}
        out[ocpp] = Version(ocpp, blocks, reasons)
    for v in out.values():
        seen: set[str] = set()
        for u in v.use_cases():
            if u.id in seen:
                raise CatalogueError(f"{v.ocpp}: use case {u.id} listed twice")
            seen.add(u.id)
    return out


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    p = Path(path) if path else default_catalogue_path()
    return parse_catalogue(yaml.safe_load(p.read_text(encoding="utf-8")))


@dataclass
class CaseRef:
    id: str
    ocpp: str
    role: str
    use_cases: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    path: str = ""


def library_cases(paths: Iterable[str | Path]) -> tuple[list[CaseRef], list[str]]:
    """The cases under `paths` (header fields only) and the files whose header is unreadable.

    Only the header is read (plain YAML, no step validation): coverage is about what the
    library claims to test, and must not depend on the simulators importing cleanly."""
    from .scenario.loader import iter_case_files

    cases, broken = [], []
    for f in iter_case_files(paths):
        try:
            doc = yaml.safe_load(Path(f).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            doc = None
        if not isinstance(doc, dict) or doc.get("ocpp") is None or doc.get("role") is None:
            broken.append(str(f))
            continue
        cases.append(CaseRef(str(doc.get("id") or Path(f).stem), str(doc["ocpp"]), str(doc["role"]),
                             [str(u) for u in _list(doc.get("use_cases"))],
                             [str(r) for r in _list(doc.get("requirements"))], str(f)))
    return cases, broken


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _pct(covered: int, total: int) -> float:
    return round(100.0 * covered / total, 1) if total else 0.0


def coverage(cases: Iterable[CaseRef], catalogue: Catalogue | None = None, *,
             unloadable: Iterable[str] = ()) -> dict[str, Any]:
    catalogue = catalogue if catalogue is not None else load_catalogue()
    cases = list(cases)
    # (ocpp, role, use case id) -> case ids naming it
    hits: dict[tuple[str, str, str], list[str]] = {}
    unmatched: list[dict[str, str]] = []
    for c in cases:
        version = catalogue.get(c.ocpp)
        index = {k: u.id for u in version.use_cases() for k in u.keys()} if version else {}
        named = set()
        for name in c.use_cases:
            uid = index.get(norm(name))
            if uid is None:
                unmatched.append({"case": c.id, "ocpp": c.ocpp, "role": c.role, "use_case": name})
            else:
                named.add(uid)
        for req in c.requirements:
            m = _REQ.match(req)
            if m and norm(m.group(1)) in index:
                named.add(index[norm(m.group(1))])
        for uid in sorted(named):
            hits.setdefault((c.ocpp, c.role, uid), []).append(c.id)

    versions, figures = [], {}
    for ocpp, version in catalogue.items():
        roles = []
        for role in ROLES:
            blocks, profiles = [], {}
            for b in version.blocks:
                ucs = [u for u in b.use_cases if role in u.roles]
                if not ucs:
                    continue
                done, gaps = [], []
                for u in ucs:
                    by = sorted(hits.get((ocpp, role, u.id), []))
                    prof = profiles.setdefault(u.profile, [0, 0])
                    prof[1] += 1
                    if by:
                        prof[0] += 1
                        done.append({"id": u.id, "title": u.title, "profile": u.profile, "cases": by})
                    else:
                        gaps.append({"id": u.id, "title": u.title, "profile": u.profile,
                                     "reason": version.reason(u, role)})
                blocks.append({"block": b.id, "name": b.name, "profile": b.profile, "covered": len(done),
                               "total": len(ucs), "percent": _pct(len(done), len(ucs)),
                               "use_cases": done, "gaps": gaps})
            covered = sum(b["covered"] for b in blocks)
            total = sum(b["total"] for b in blocks)
            figures[f"{ocpp}.{role}"] = f"{covered}/{total}"
            roles.append({"role": role, "dut": DUT_OF_ROLE[role], "covered": covered, "total": total,
                          "percent": _pct(covered, total),
                          "cases": sum(1 for c in cases if c.ocpp == ocpp and c.role == role),
                          "blocks": blocks,
                          "profiles": [{"profile": p, "covered": n, "total": t, "percent": _pct(n, t)}
                                       for p, (n, t) in profiles.items()]})
        versions.append({"ocpp": ocpp, "roles": roles})
    return {"schema": SCHEMA, "cases": len(cases), "unloadable": list(unloadable), "unmatched": unmatched,
            "figures": figures, "versions": versions}


def library_coverage(paths: Iterable[str | Path], catalogue: Catalogue | None = None) -> dict[str, Any]:
    cases, broken = library_cases(paths)
    return coverage(cases, catalogue, unloadable=broken)


def environment_figures(library_root: str | Path) -> dict[str, str]:
    """`coverage.<ocpp>.<role>` = "covered/total" (use cases), for the Allure environment."""
    root = Path(library_root)
    if not root.exists():
        return {}
    result = library_coverage([root])
    env = {f"coverage.{k}": v for k, v in result["figures"].items()}
    for v in result["versions"]:
        for r in v["roles"]:
            for p in r["profiles"]:
                env[f"coverage.{v['ocpp']}.{r['role']}.{p['profile']}"] = f"{p['covered']}/{p['total']}"
    return env
