"""HL7v3 schema validation against the official MIM schema folder (laid out like omvt/: Schemas/<interaction>.xsd,
which include ../dt, ../voc...). The folder cannot be redistributed, so it is found through Settings.hl7v3_schemas.

Each schema is compiled at most once per process (under a lock, on first use) with network access off and no
entity expansion; a compiled schema validates under its own lock, because an lxml validator keeps its error log on
the instance."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from lxml import etree

from sandbox.messaging import NS, Problem, xmlsafe

MAX_PROBLEMS = 50  # per message: past this the schema errors are one mistake repeated
_INTERACTION = re.compile(r"^[A-Za-z][A-Za-z0-9_]{2,80}$")
_HL7_PREFIX = re.compile(r"\{urn:hl7-org:v3\}")


class _Compiled:
    def __init__(self, schema: etree.XMLSchema | None, error: str | None):
        self.schema = schema
        self.error = error
        self.lock = threading.Lock()


class SchemaSet:
    """The schemas of one folder. Holding one is cheap: nothing compiles until an interaction is validated."""

    def __init__(self, folder: Path | str | None):
        self.folder = Path(folder).resolve() if folder else None
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SchemaSet({str(self.folder) if self.folder else None!r})"

    def _schema_file(self, interaction: str) -> Path | None:
        if self.folder is None or not interaction or not _INTERACTION.match(interaction):
            return None
        for candidate in (self.folder / "Schemas" / f"{interaction}.xsd", self.folder / f"{interaction}.xsd"):
            if candidate.is_file():
                return candidate
        return None

    def available(self, interaction: str) -> bool:
        return self._schema_file(interaction) is not None

    def interactions(self) -> list[str]:
        """Every interaction the folder holds a schema for (message types *_MT* are parts, not interactions)."""
        if self.folder is None or not (self.folder / "Schemas").is_dir():
            return []
        return sorted(p.stem for p in (self.folder / "Schemas").glob("*.xsd") if "_IN" in p.stem)

    def compiled(self, interaction: str) -> etree.XMLSchema | None:
        entry = self._entry(interaction)
        return entry.schema if entry else None

    def _entry(self, interaction: str) -> _Compiled | None:
        found = self._compiled.get(interaction)
        if found is not None:
            return found
        path = self._schema_file(interaction)
        if path is None:
            return None
        with self._lock:
            found = self._compiled.get(interaction)
            if found is None:
                found = _compile(path)
                self._compiled[interaction] = found
        return found

    def validate(self, interaction: str, root: etree._Element) -> list[Problem]:
        """Every schema error of the message, each with its line and an XPath (at most MAX_PROBLEMS)."""
        entry = self._entry(interaction)
        if entry is None:
            where = str(self.folder) if self.folder else "Settings.hl7v3_schemas"
            return [Problem("schema.unavailable", f"no official schema for {interaction} is available, so the "
                            "payload was not schema-checked", where)]
        if entry.schema is None:
            return [Problem("schema.unavailable", f"the schema for {interaction} does not compile: {entry.error}",
                            str(self._schema_file(interaction)))]
        with entry.lock:
            valid = entry.schema.validate(root)
            errors = [] if valid else list(entry.schema.error_log)
        problems: list[Problem] = []
        for error in errors[:MAX_PROBLEMS]:
            where = _xpath(root, error.path)
            message = _HL7_PREFIX.sub("hl7:", error.message)
            problems.append(Problem("hl7.schema", f"line {error.line}: {message}", where))
        if len(errors) > MAX_PROBLEMS:
            problems.append(Problem("hl7.schema", f"{len(errors) - MAX_PROBLEMS} more schema errors not listed",
                                    xmlsafe.xpath_of(root)))
        if not valid and not problems:
            problems.append(Problem("hl7.schema", f"the message is not valid against {interaction}.xsd",
                                    xmlsafe.xpath_of(root)))
        return problems


def _xpath(root: etree._Element, path: str | None) -> str:
    """libxml2 reports a node path with positional steps ("/*/*[2]"), relative to the validated element when that
    is not the document root; turn it into our prefixed, readable XPath."""
    if not path or not path.startswith("/"):
        return xmlsafe.xpath_of(root)
    steps = path.split("/")[2:]  # the first step is the validated element itself
    namespaces = {**{k: v for k, v in root.nsmap.items() if k}, **NS}
    try:
        found = root.xpath("./" + "/".join(steps), namespaces=namespaces) if steps else [root]
    except (etree.XPathError, TypeError, ValueError):
        return path
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return xmlsafe.xpath_of(found[0])
    return path


def _compile(path: Path) -> _Compiled:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False, huge_tree=False)
    try:
        return _Compiled(etree.XMLSchema(etree.parse(str(path), parser)), None)
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
        return _Compiled(None, str(exc))


_SETS: dict[Path | None, SchemaSet] = {}
_SETS_LOCK = threading.Lock()


def schema_set(folder: Path | str | None) -> SchemaSet:
    """One SchemaSet per folder per process, so each schema is compiled once however many apps ask."""
    key = Path(folder).resolve() if folder else None
    found = _SETS.get(key)
    if found is None:
        with _SETS_LOCK:
            found = _SETS.setdefault(key, SchemaSet(key))
    return found
