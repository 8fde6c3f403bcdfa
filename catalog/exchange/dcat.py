"""The catalog as DCAT-AP 3 (RDF): what a DCAT harvester or a data portal reads.

Built from the contracts' catalog metadata and the published versions, nothing else: the
same records the catalog API serves. One ``dcat:Dataset`` per dataset (its latest version)
with every published version as a ``dcat:Dataset`` of its own, linked by the DCAT 3 version
properties and gathered in a ``dcat:DatasetSeries``. Codes of the contracts map to the EU
controlled vocabularies DCAT-AP names (frequency, access right); the classification and the
sharing type are SKOS concepts of govshare's own schemes. Validated against the official
DCAT-AP 3.0.1 SHACL shapes in the tests (0 violations).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from catalog.contracts import Contract
from catalog.store.versions import Version

# DCAT 3 (rdflib's own DCAT namespace stops at DCAT 2: no versions, no dataset series).
DCAT = Namespace("http://www.w3.org/ns/dcat#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU = "http://publications.europa.eu/resource/authority/"
JSONLD_CONTEXT = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "vcard": str(VCARD),
    "skos": str(SKOS),
    "rdfs": str(RDFS),
    "xsd": str(XSD),
}
FREQUENCY = {  # the contracts' update cycles in the EU frequency vocabulary
    "real_time": "CONT",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "yearly": "ANNUAL",
}
JSON_MEDIA_TYPE = URIRef("http://www.iana.org/assignments/media-types/application/json")
JSON_FILE_TYPE = URIRef(f"{EU}file-type/JSON")
LANGUAGES = (URIRef(f"{EU}language/ZHO"), URIRef(f"{EU}language/ENG"))
# ADMS publisher type of the office and the departments: bodies of a city government.
LOCAL_AUTHORITY = URIRef("http://purl.org/adms/publishertype/LocalAuthority")
# Labels of govshare's own concept schemes (zh, en): the catalog compilation guide's codes.
CLASSIFICATION = {
    "base": ("基础信息资源", "Base information resource"),
    "theme": ("主题信息资源", "Thematic information resource"),
    "department": ("部门信息资源", "Departmental information resource"),
}
SHARING = {
    "unconditional": ("无条件共享", "Shared with every department"),
    "conditional": ("有条件共享", "Shared on an approved request"),
    "not_shared": ("不予共享", "Not shared"),
}
SCHEMES = {
    "classification": ("资源分类", "Resource classification"),
    "sharing": ("共享类型", "Sharing type"),
}
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class Publisher:
    """The office that publishes the catalog."""

    name: str
    name_en: str


def catalog_graph(
    base: str,
    publisher: Publisher,
    contracts: Iterable[Contract],
    versions: dict[str, list[Version]],
) -> Graph:
    """The DCAT-AP graph of the catalog whose API answers at ``base`` (IRIs are its URLs);
    ``versions``: each dataset's published versions, newest first."""
    graph = Graph()
    graph.bind("dcat", DCAT)
    graph.bind("dct", DCTERMS)
    graph.bind("foaf", FOAF)
    graph.bind("vcard", VCARD)
    graph.bind("skos", SKOS)
    iri = _Iris(base.rstrip("/"))
    catalog = iri.at("catalog")
    graph.add((catalog, RDF.type, DCAT.Catalog))
    _texts(
        graph,
        catalog,
        DCTERMS.title,
        "政务信息资源目录",
        "Catalog of shared government information",
    )
    _texts(
        graph,
        catalog,
        DCTERMS.description,
        f"{publisher.name}编制的政务信息资源共享目录。",
        f"The catalog of shared government information resources of the {publisher.name_en}.",
    )
    graph.add((catalog, DCTERMS.publisher, _agent(graph, iri.at("office"), publisher)))
    for language in LANGUAGES:
        graph.add((language, RDF.type, DCTERMS.LinguisticSystem))
        graph.add((catalog, DCTERMS.language, language))
    published = [v for vs in versions.values() for v in vs]
    if published:  # the catalog changes with every publish
        graph.add((catalog, DCTERMS.issued, _when(min(published, key=lambda v: v.published_at))))
        graph.add((catalog, DCTERMS.modified, _when(max(published, key=lambda v: v.published_at))))
    graph.add((catalog, FOAF.homepage, iri.at("")))
    graph.add((iri.at(""), RDF.type, FOAF.Document))
    graph.add((catalog, DCAT.themeTaxonomy, _scheme(graph, iri, "classification")))
    for contract in contracts:
        dataset = _dataset(graph, iri, contract, versions.get(contract.dataset, []))
        graph.add((catalog, DCAT.dataset, dataset))
    return graph


class _Iris:
    def __init__(self, base: str) -> None:
        self.base = base

    def at(self, path: str) -> URIRef:
        return URIRef(f"{self.base}/{path}")

    def dataset(self, name: str, *rest: str) -> URIRef:
        return self.at("/".join(["catalog", quote(name), *rest]))


def _texts(graph: Graph, subject, predicate, zh: str | None, en: str | None) -> None:
    for text, language in ((zh, "zh"), (en, "en")):
        if text:
            graph.add((subject, predicate, Literal(text, lang=language)))


def _agent(graph: Graph, node: URIRef, who) -> URIRef:
    graph.add((node, RDF.type, FOAF.Agent))
    graph.add((LOCAL_AUTHORITY, RDF.type, SKOS.Concept))
    graph.add((LOCAL_AUTHORITY, SKOS.prefLabel, Literal("Local authority", lang="en")))
    graph.add((node, DCTERMS.type, LOCAL_AUTHORITY))
    _texts(graph, node, FOAF.name, who.name, who.name_en)
    return node


def _contact(graph: Graph, provider: URIRef, who) -> URIRef:
    """The providing department as the contact point (vCard): whom to ask about the data."""
    node = URIRef(f"{provider}#contact")
    graph.add((node, RDF.type, VCARD.Kind))
    graph.add((node, RDF.type, VCARD.Organization))
    _texts(graph, node, VCARD.fn, who.name, who.name_en)
    return node


def _scheme(graph: Graph, iri: _Iris, name: str) -> URIRef:
    scheme = iri.at(f"concepts/{name}")
    graph.add((scheme, RDF.type, SKOS.ConceptScheme))
    _texts(graph, scheme, DCTERMS.title, *SCHEMES[name])
    return scheme


def _concept(graph: Graph, iri: _Iris, scheme: str, code: str, labels: tuple[str, str]) -> URIRef:
    concept = iri.at(f"concepts/{scheme}/{code}")
    graph.add((concept, RDF.type, SKOS.Concept))
    graph.add((concept, SKOS.inScheme, _scheme(graph, iri, scheme)))
    graph.add((concept, SKOS.notation, Literal(code)))
    _texts(graph, concept, SKOS.prefLabel, *labels)
    return concept


def _access_right(contract: Contract) -> URIRef:
    """The EU access right: public only where the open attribute says so; otherwise shared
    between departments under conditions, or not at all."""
    meta = contract.catalog
    if meta.open.open:
        code = "PUBLIC"
    elif meta.sharing.type == "not_shared":
        code = "NON_PUBLIC"
    else:
        code = "RESTRICTED"
    return URIRef(f"{EU}access-right/{code}")


def _dataset(graph: Graph, iri: _Iris, contract: Contract, versions: list[Version]) -> URIRef:
    """The dataset (its latest version's number and dates) and each published version."""
    node = iri.dataset(contract.dataset)
    _describe(graph, iri, node, contract)
    rights = _rights(graph, iri, contract)
    graph.add((node, DCAT.distribution, _distribution(graph, iri, contract, rights)))
    if versions:
        latest = versions[0]
        graph.add((node, DCAT.version, Literal(str(latest.version))))
        graph.add((node, DCTERMS.modified, _when(latest)))
        graph.add((node, DCTERMS.issued, _when(versions[-1])))
        series = _series(graph, iri, contract)
        graph.add((node, DCAT.hasCurrentVersion, iri.dataset(*_version_path(contract, latest))))
        for newer, older in zip(versions, [*versions[1:], None], strict=True):
            version = _version(graph, iri, contract, newer, series)
            # DCAT 3's property, and Dublin Core's that DCAT-AP 3 lists
            graph.add((node, DCAT.hasVersion, version))
            graph.add((node, DCTERMS.hasVersion, version))
            if older is not None:
                previous = iri.dataset(*_version_path(contract, older))
                graph.add((version, DCAT.previousVersion, previous))
    return node


def _describe(graph: Graph, iri: _Iris, node: URIRef, contract: Contract) -> None:
    """What a dataset and each of its versions say alike."""
    meta = contract.catalog
    graph.add((node, RDF.type, DCAT.Dataset))
    _texts(graph, node, DCTERMS.title, meta.name, meta.name_en)
    _texts(graph, node, DCTERMS.description, meta.summary, meta.summary_en)
    graph.add((node, DCTERMS.identifier, Literal(meta.resource_code)))
    for word in meta.keywords:
        graph.add((node, DCAT.keyword, Literal(word, lang="zh" if _CJK.search(word) else "en")))
    provider = iri.at(f"departments/{quote(meta.provider.code)}")
    graph.add((node, DCTERMS.publisher, _agent(graph, provider, meta.provider)))
    graph.add((provider, DCTERMS.identifier, Literal(meta.provider.code)))
    graph.add((node, DCAT.contactPoint, _contact(graph, provider, meta.provider)))
    labels = CLASSIFICATION[meta.classification]
    graph.add(
        (node, DCAT.theme, _concept(graph, iri, "classification", meta.classification, labels))
    )
    sharing = _concept(graph, iri, "sharing", meta.sharing.type, SHARING[meta.sharing.type])
    graph.add((node, DCTERMS.type, sharing))
    access = _access_right(contract)
    graph.add((access, RDF.type, DCTERMS.RightsStatement))
    graph.add((node, DCTERMS.accessRights, access))
    frequency = URIRef(f"{EU}frequency/{FREQUENCY[meta.update_cycle]}")
    graph.add((frequency, RDF.type, DCTERMS.Frequency))
    graph.add((node, DCTERMS.accrualPeriodicity, frequency))
    for related in meta.related:
        graph.add((node, DCTERMS.relation, iri.dataset(related)))


def _rights(graph: Graph, iri: _Iris, contract: Contract) -> URIRef:
    """The sharing conditions and legal basis, and the open attribute's conditions."""
    meta = contract.catalog
    node = iri.dataset(contract.dataset, "rights")
    graph.add((node, RDF.type, DCTERMS.RightsStatement))
    parts = [
        f"共享类型：{SHARING[meta.sharing.type][0]}",
        f"共享条件：{meta.sharing.conditions}" if meta.sharing.conditions else None,
        f"共享依据：{meta.sharing.legal_basis}" if meta.sharing.legal_basis else None,
        f"开放条件：{meta.open.conditions}" if meta.open.conditions else None,
    ]
    graph.add((node, RDFS.label, Literal("；".join(p for p in parts if p), lang="zh")))
    return node


def _distribution(graph: Graph, iri: _Iris, contract: Contract, rights: URIRef) -> URIRef:
    """The rows API: where a granted department reads the dataset (JSON, paged)."""
    node = iri.dataset(contract.dataset, "distributions", "api")
    graph.add((node, RDF.type, DCAT.Distribution))
    graph.add((node, DCAT.accessURL, iri.at(f"datasets/{quote(contract.dataset)}/rows")))
    graph.add((JSON_MEDIA_TYPE, RDF.type, DCTERMS.MediaType))
    graph.add((node, DCAT.mediaType, JSON_MEDIA_TYPE))
    graph.add((node, DCTERMS.rights, rights))
    graph.add((JSON_FILE_TYPE, RDF.type, DCTERMS.MediaTypeOrExtent))
    graph.add((node, DCTERMS.format, JSON_FILE_TYPE))
    _texts(graph, node, DCTERMS.title, "数据接口", "Rows API")
    _texts(
        graph,
        node,
        DCTERMS.description,
        "按授权范围分页读取数据（需令牌和已批准的共享申请；脱敏项按授权处理），每次调用均记入审计日志。",
        "Pages of rows within a granted scope (a token and an approved access request; "
        "items masked as granted); every call is recorded in the audit log.",
    )
    return node


def _series(graph: Graph, iri: _Iris, contract: Contract) -> URIRef:
    meta = contract.catalog
    node = iri.dataset(contract.dataset, "series")
    graph.add((node, RDF.type, DCAT.DatasetSeries))
    provider = iri.at(f"departments/{quote(meta.provider.code)}")
    graph.add((node, DCTERMS.publisher, _agent(graph, provider, meta.provider)))
    graph.add((node, DCAT.contactPoint, _contact(graph, provider, meta.provider)))
    _texts(graph, node, DCTERMS.title, f"{meta.name}（各版本）", f"{meta.name_en} (all versions)")
    _texts(
        graph,
        node,
        DCTERMS.description,
        f"{meta.name}每次发布的版本。",
        f"Every published version of the {meta.name_en}.",
    )
    return node


def _version_path(contract: Contract, version: Version) -> tuple[str, ...]:
    return (contract.dataset, "versions", str(version.version))


def _version(
    graph: Graph, iri: _Iris, contract: Contract, version: Version, series: URIRef
) -> URIRef:
    node = iri.dataset(*_version_path(contract, version))
    _describe(graph, iri, node, contract)
    graph.add((node, DCAT.version, Literal(str(version.version))))
    graph.add((node, DCTERMS.issued, _when(version)))
    graph.add((node, DCAT.inSeries, series))
    return node


def _when(version: Version) -> Literal:
    return Literal(version.published_at.isoformat(), datatype=XSD.dateTime)
