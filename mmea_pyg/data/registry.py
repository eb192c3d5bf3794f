"""Dataset cards: where each MMKG benchmark comes from and what it must contain.

A card names the two knowledge graphs of a benchmark, the upstream files (relative paths in the
`mniepert/mmkb <https://github.com/mniepert/mmkb>`_ layout, pinned to one commit, each with the git
blob id it has there) and the statistics a correct build reproduces.  The downloader verifies files
against these ids; the dataset reads the cards to know which files to parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The mmkb commit every upstream file is pinned to.
MMKB_COMMIT = "dc1c89cac110ddbb9944d6ed5ab2b3c2339d320c"
#: Raw files of the pinned commit.
UPSTREAM_BASE_URL = f"https://raw.githubusercontent.com/mniepert/mmkb/{MMKB_COMMIT}/"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a benchmark.

    Attributes:
        path: Path relative to the mirror/upstream root, e.g. ``"DB15K/DB15K_SameAsLink.txt"``. The
            same relative path is used under the local raw directory.
        git_blob: Git blob id (sha1 of ``b"blob <size>\\0" + content``) of the upstream file at
            :data:`MMKB_COMMIT`, or ``None`` where no id is known.
        url: Upstream URL; defaults to :data:`UPSTREAM_BASE_URL` + ``path``.
        optional: Whether a benchmark builds without it (e.g. image features, display names).
    """

    path: str
    git_blob: str | None
    url: str | None = None
    optional: bool = False

    @property
    def upstream_url(self) -> str:
        return self.url or UPSTREAM_BASE_URL + self.path


@dataclass(frozen=True)
class KGCard:
    """The files of one knowledge graph of the MMKG release."""

    name: str
    entity_triples: RemoteFile
    numerical_triples: RemoteFile
    image_index: RemoteFile
    #: VGG16 features (HDF5, one dataset per image id), fetched only with ``--with-images``.
    image_data: RemoteFile
    #: sameAs links *to FB15K* (absent for FB15K itself).
    same_as: RemoteFile | None = None
    #: Extra MID -> display-name file (FB15K only; not part of mmkb, used when a mirror ships it).
    names: RemoteFile | None = None

    def text_files(self) -> list[RemoteFile]:
        """The required text files plus the optional names file, in a stable order."""
        files = [self.entity_triples, self.numerical_triples, self.image_index]
        if self.same_as is not None:
            files.append(self.same_as)
        if self.names is not None:
            files.append(self.names)
        return files


def _kg(
    name: str, blobs: dict[str, str], image_url: str, same_as: str | None = None, names: bool = False
) -> KGCard:
    return KGCard(
        name=name,
        entity_triples=RemoteFile(f"{name}/{name}_EntityTriples.txt", blobs["EntityTriples"]),
        numerical_triples=RemoteFile(f"{name}/{name}_NumericalTriples.txt", blobs["NumericalTriples"]),
        image_index=RemoteFile(f"{name}/{name}_ImageIndex.txt", blobs["ImageIndex"]),
        image_data=RemoteFile(f"{name}/{name}_ImageData.h5", None, url=image_url, optional=True),
        same_as=None if same_as is None else RemoteFile(f"{name}/{name}_SameAsLink.txt", same_as),
        names=RemoteFile(f"{name}/{name}_mid2name.txt", None, optional=True) if names else None,
    )


FB15K = _kg(
    "FB15K",
    {
        "EntityTriples": "65bbf8d6433e3bf0d00a981fb118b0ea03b954ae",
        "ImageIndex": "80f43f4b953101bc05ffbc22ca4089cd78e83d5c",
        "NumericalTriples": "680b58009186be23c37e7e7778a726198323dd4e",
    },
    image_url="https://www.dropbox.com/s/acsaog6qxy1kgpu/FB15K_ImageData.h5?dl=1",
    names=True,
)
DB15K = _kg(
    "DB15K",
    {
        "EntityTriples": "2d978cb54078bea4b8cc08baba05e29215c3664e",
        "ImageIndex": "74bacef4ddff6f53b061bd390319baa1f8cd5519",
        "NumericalTriples": "82cbb27d5dbeedbc6b6d78a4a1ad9ef0b993949d",
    },
    image_url="https://www.dropbox.com/s/rfl27sqpet7wyb3/DB15K_ImageData.h5?dl=1",
    same_as="e0e122e7b1f4d78a1885f97854b9affaf0b16816",
)
YAGO15K = _kg(
    "YAGO15K",
    {
        "EntityTriples": "1ed08e7d11081bb46b12a26cc04d978928bf46eb",
        "ImageIndex": "f1daf9d76144283847cc22bbfa9b8661fa4035d0",
        "NumericalTriples": "c38fe5192d04ec472091218f7510fac2a406baa7",
    },
    image_url="https://www.dropbox.com/s/8062amzsspx2d6b/YAGO15K_ImageData.h5?dl=1",
    same_as="eeca1ba3d03ea339e4e740799f8c25c94d0d1554",
)
KGS: dict[str, KGCard] = {kg.name: kg for kg in (FB15K, DB15K, YAGO15K)}


@dataclass(frozen=True)
class DatasetCard:
    """One alignment benchmark: a source KG, a target KG and the sameAs links between them.

    Attributes:
        name: CLI name, e.g. ``"fb15k-db15k"``.
        source: The KG whose entities are ``HeteroData['source']`` (FB15K for both benchmarks: the
            sameAs files list the FB15K MID first).
        target: The KG whose entities are ``HeteroData['target']``.
        expected: Statistics of the published release that a build from upstream reproduces
            (``{"<kg>.entities": ..., "<kg>.relations": ..., "<kg>.triples": ..., "pairs": ...}``);
            ``triples`` counts distinct triples.
        paper: Published CLAMEA figures at 20% seeds (Table 1) for reference in reports.
        paper_ablations: Published CLAMEA ablation rows at 20% seeds (Table 2): canonical switch
            name (``"w/o V"``) -> ``{"hits@1", "hits@10", "mrr"}``.
    """

    name: str
    source: KGCard
    target: KGCard
    expected: dict[str, int] = field(default_factory=dict)
    paper: dict[str, float] = field(default_factory=dict)
    paper_ablations: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def links(self) -> RemoteFile:
        assert self.target.same_as is not None
        return self.target.same_as

    def files(self, with_images: bool = False) -> list[RemoteFile]:
        """Every file the benchmark needs (optionally with the image features), without repeats."""
        files = self.source.text_files() + self.target.text_files()
        if with_images:
            files += [self.source.image_data, self.target.image_data]
        return files


def _table2(*rows: tuple[str, float, float, float]) -> dict[str, dict[str, float]]:
    """Table 2 rows ``(switch, Hits@1, Hits@10, MRR)`` as :attr:`DatasetCard.paper_ablations`."""
    return {name: {"hits@1": h1, "hits@10": h10, "mrr": mrr} for name, h1, h10, mrr in rows}


DATASETS: dict[str, DatasetCard] = {
    "fb15k-db15k": DatasetCard(
        name="fb15k-db15k",
        source=FB15K,
        target=DB15K,
        expected={
            "DB15K.entities": 12842,
            "DB15K.relations": 279,
            "DB15K.triples": 89197,
            "FB15K.entities": 14951,
            "FB15K.relations": 1345,
            "FB15K.triples": 592213,
            "pairs": 12846,
        },
        paper={
            "hits@1": 0.8176,
            "hits@5": 0.8989,
            "hits@10": 0.9225,
            "mrr": 0.8551,
        },
        paper_ablations=_table2(
            ("w/o R", 0.5402, 0.6491, 0.5783),
            ("w/o V", 0.3623, 0.6218, 0.4487),
            ("w/o A", 0.7867, 0.8984, 0.8261),
            ("w/o MFE", 0.8089, 0.9202, 0.8475),
            ("w/o DMAFF", 0.7924, 0.9089, 0.8338),
            ("w/o DMMG", 0.8051, 0.9154, 0.8443),
            ("w/o CMAE", 0.6998, 0.8384, 0.7466),
            ("w/o IT", 0.6926, 0.8436, 0.7465),
            ("w/o MAF", 0.8013, 0.9158, 0.8395),
            ("w/o L_m", 0.8115, 0.9170, 0.8492),
            ("w/o L_s", 0.8105, 0.9187, 0.8492),
            ("w/o G", 0.8105, 0.9143, 0.8402),
        ),
    ),
    "fb15k-yago15k": DatasetCard(
        name="fb15k-yago15k",
        source=FB15K,
        target=YAGO15K,
        expected={
            "YAGO15K.entities": 15404,
            "YAGO15K.relations": 32,
            "YAGO15K.triples": 122886,
            "FB15K.entities": 14951,
            "FB15K.relations": 1345,
            "FB15K.triples": 592213,
            "pairs": 11199,
        },
        paper={
            "hits@1": 0.6319,
            "hits@5": 0.7677,
            "hits@10": 0.8122,
            "mrr": 0.6956,
        },
        paper_ablations=_table2(
            ("w/o R", 0.3352, 0.4851, 0.3873),
            ("w/o V", 0.4248, 0.6602, 0.5035),
            ("w/o A", 0.5189, 0.7031, 0.5831),
            ("w/o MFE", 0.6081, 0.7913, 0.6719),
            ("w/o DMAFF", 0.5871, 0.7739, 0.6524),
            ("w/o DMMG", 0.6138, 0.7999, 0.6782),
            ("w/o CMAE", 0.4639, 0.6485, 0.5272),
            ("w/o IT", 0.5236, 0.7239, 0.5923),
            ("w/o MAF", 0.5913, 0.7807, 0.6578),
            ("w/o L_m", 0.5965, 0.789, 0.6643),
            ("w/o L_s", 0.6128, 0.7944, 0.6782),
            ("w/o G", 0.5845, 0.7766, 0.6499),
        ),
    ),
}


def get_card(name: str) -> DatasetCard:
    """Return the card of ``name`` (case-insensitive); raise a ``ValueError`` listing the known names."""
    key = name.strip().lower()
    if key not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}")
    return DATASETS[key]
