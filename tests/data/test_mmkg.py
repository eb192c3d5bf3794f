from pathlib import Path

import pytest
from conftest import FIXTURES

from mmea_pyg.data.formats import mmkg
from mmea_pyg.data.registry import DB15K, FB15K
from mmea_pyg.errors import DataFormatError


def test_parse_entity_triples_strips_brackets_and_keeps_repeats():
    triples = mmkg.parse_entity_triples(FIXTURES / "DB15K" / "DB15K_EntityTriples.txt")
    assert triples[0] == (
        "http://dbpedia.org/resource/Donald_Trump",
        "http://dbpedia.org/ontology/birthPlace",
        "http://dbpedia.org/resource/New_York_City",
    )
    fb = mmkg.parse_entity_triples(FIXTURES / "FB15K" / "FB15K_EntityTriples.txt")
    assert len(fb) == 8 and len(set(fb)) == 7  # the last line repeats the first


def test_parse_numerical_triples_both_formats():
    db = mmkg.parse_numerical_triples(FIXTURES / "DB15K" / "DB15K_NumericalTriples.txt")
    assert db[0] == (
        "http://dbpedia.org/resource/Donald_Trump",
        "http://dbpedia.org/ontology/birthDate",
        "1946-06-14",
    )
    assert db[2][1] == "http://www.w3.org/2003/01/geo/wgs84_pos#lat"
    fb = mmkg.parse_numerical_triples(FIXTURES / "FB15K" / "FB15K_NumericalTriples.txt")
    assert fb[0] == ("/m/01", "http://rdf.freebase.com/ns/people.person.date_of_birth", "1946.0")


def test_parse_literal_with_spaces_and_language_tag(tmp_path: Path):
    path = tmp_path / "n.txt"
    path.write_text('<e> <p> "New York City"@en .\n<e> <q> "a b"^^<http://x#string> .\n', encoding="utf-8")
    assert mmkg.parse_numerical_triples(path) == [("e", "p", "New York City"), ("e", "q", "a b")]


def test_image_index_same_as_and_names():
    images = mmkg.parse_image_index(FIXTURES / "DB15K" / "DB15K_ImageIndex.txt")
    assert images["http://dbpedia.org/resource/Donald_Trump"] == "DBIMG00001"
    links = mmkg.parse_same_as(FIXTURES / "DB15K" / "DB15K_SameAsLink.txt")
    assert links[0] == ("/m/01", "http://dbpedia.org/resource/Donald_Trump") and len(links) == 8
    names = mmkg.parse_names(FIXTURES / "FB15K" / "FB15K_mid2name.txt")
    assert names["/m/05"] == "New York City"


@pytest.mark.parametrize(
    ("parser", "content", "line"),
    [
        (mmkg.parse_entity_triples, "<a> <r> <b> .\n<a> <r> .\n", 2),
        (mmkg.parse_entity_triples, "<a> <r> <b>\n", 1),
        (mmkg.parse_numerical_triples, '<a> <p> "1"^^<t> .\n\n<a> <p> 1 .\n', 3),
        (mmkg.parse_numerical_triples, "/m/1\t<p>\n", 1),
        (mmkg.parse_image_index, "<a>\tIMG1\n<b>\n", 2),
        (mmkg.parse_same_as, "/m/1 <SameAs> <a> .\n/m/2 <sameAs> <b>\n", 2),
        (mmkg.parse_same_as, "/m/1 <seeAlso> <a> .\n", 1),
        (mmkg.parse_names, "/m/1\tA\n/m/2 B\n", 2),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, parser, content, line):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        parser(path)
    assert info.value.line == line
    assert f"{path}, line {line}" in str(info.value)
    assert "mmea download" in str(info.value)


def test_invalid_utf8_and_missing_file(tmp_path: Path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"<a> <r> <\xff> .\n")
    with pytest.raises(DataFormatError, match="UTF-8"):
        mmkg.parse_entity_triples(path)
    with pytest.raises(DataFormatError, match="not found"):
        mmkg.parse_entity_triples(tmp_path / "missing.txt")


def test_local_and_display_names():
    assert mmkg.local_name("http://dbpedia.org/ontology/birthYear") == "birthYear"
    assert mmkg.local_name("<http://www.w3.org/2003/01/geo/wgs84_pos#long>") == "long"
    assert (
        mmkg.local_name("http://rdf.freebase.com/ns/location.geocode.latitude") == "location.geocode.latitude"
    )
    assert mmkg.display_name("http://dbpedia.org/resource/New_York_City") == "New York City"


def test_load_kg_entity_order():
    kg = mmkg.load_kg(FIXTURES, FB15K)
    entities = kg.entities(["/m/08"])
    # Triple entities first (first-seen order), then attribute-/image-only ones, then the extra ones.
    assert entities == ["/m/01", "/m/05", "/m/02", "/m/03", "/m/04", "/m/06", "/m/07", "/m/08"]
    assert kg.names["/m/01"] == "Donald Trump"
    db = mmkg.load_kg(FIXTURES, DB15K)
    assert db.names == {}


def test_attribute_names_and_values_for_sentences():
    assert mmkg.attribute_name("http://rdf.freebase.com/ns/location.geocode.latitude") == "latitude"
    assert mmkg.attribute_name("http://dbpedia.org/ontology/birthYear") == "birthYear"
    assert mmkg.normalize_value("1946.0") == "1946" and mmkg.normalize_value("1905.0000") == "1905"
    assert mmkg.normalize_value("-12.000") == "-12"
    for kept in ("1.9", "1946-06-14", "3.2E8", "40.71", "abc.0"):
        assert mmkg.normalize_value(kept) == kept
