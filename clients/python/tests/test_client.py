"""What each Client method sends (method, path, headers, body) and how it reads the
answer, against docs/rest-api.md, with a fake server."""
import json
import math

import numpy as np
import pytest

from plotwire import Client, ProtocolError, Published, SourceData, WriteResult

from fakeserver import FakeServer, Reply

DOC = "/api/v1/documents/runs/exp42"


class Recorder:
    def __init__(self, answer=None, status=200):
        self.answer = {"seq": 3, "rows": 2} if answer is None else answer
        self.status = status

    def __call__(self, req):
        return Reply(self.status, self.answer)


@pytest.fixture
def fake():
    rec = Recorder()
    with FakeServer(rec) as srv:
        srv.rec = rec
        with Client(srv.url, "runs/exp42") as client:
            yield srv, client


def last(srv):
    return srv.recorded()[-1]


def test_stream_json_and_rollover(fake):
    srv, client = fake
    assert client.stream("metrics", {"label": ["a", "b"], "x": [1, 2]}, rollover=100) == WriteResult(3, 2)
    req = last(srv)
    assert (req.method, req.path, req.query) == ("POST", f"{DOC}/sources/metrics/stream", {"rollover": ["100"]})
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {"label": ["a", "b"], "x": [1, 2]}
    with pytest.raises(ValueError):
        client.stream("metrics", {"x": [1]}, rollover=0)


def test_stream_numpy_goes_raw(fake):
    srv, client = fake
    client.stream("m", {"x": np.array([1.0, math.nan])})
    req = last(srv)
    assert req.query == {} and req.headers["content-type"] == "application/x-plotwire-columns"
    assert req.body[:4] == b"PWC1"


def test_source_names_are_quoted(fake):
    srv, client = fake
    client.clear_source("my source/1")
    assert last(srv).path == f"{DOC}/sources/my%20source%2F1/clear"


def test_replace_patch_clear(fake):
    srv, client = fake
    client.replace("s", {"x": [1.5]})
    assert (last(srv).method, last(srv).path) == ("PUT", f"{DOC}/sources/s")
    assert client.patch("s", {"x": [(0, 2.5), (np.int64(1), math.nan)], "y": [[2, "b"]]}) == 3
    req = last(srv)
    assert (req.method, req.path) == ("POST", f"{DOC}/sources/s/patch")
    assert req.body == b'{"x":[[0,2.5],[1,null]],"y":[[2,"b"]]}'
    with pytest.raises(TypeError):
        client.patch("s", {"x": [(slice(0, 2), [1, 2])]})
    client.clear_source("s")
    req = last(srv)
    assert (req.method, req.path, req.body) == ("POST", f"{DOC}/sources/s/clear", b"")
    assert "idempotency-key" in req.headers


def test_data_reads_back_with_cursor(fake):
    srv, client = fake
    srv.rec.answer = {"since": 5, "next": 42, "reset": False, "rows": 3,
                      "data": {"x": [1, None, 1e999], "s": ["a", "b", None]}}
    got = client.data("s", since=5)
    req = last(srv)
    assert (req.method, req.path, req.query) == ("GET", f"{DOC}/sources/s", {"since": ["5"]})
    assert isinstance(got, SourceData) and (got.since, got.next, got.reset, got.rows) == (5, 42, False, 3)
    assert got.data["x"][0] == 1 and math.isnan(got.data["x"][1]) and got.data["x"][2] == math.inf
    assert got.data["s"] == ["a", "b", None]
    client.data("s")
    assert last(srv).query == {}


def test_data_with_a_bad_answer_is_a_protocol_error(fake):
    srv, client = fake
    srv.rec.answer = {"rows": 1}
    with pytest.raises(ProtocolError):
        client.data("s")


def test_set_for_all_and_for_one_view(fake):
    srv, client = fake
    assert client.set("lr", "value", 0.5) == 3
    req = last(srv)
    assert (req.method, req.path, req.json()) == ("PUT", f"{DOC}/models/lr/value", {"value": 0.5})
    client.set("lr", "value", [1, 2], view="view-1")
    assert last(srv).json() == {"value": [1, 2], "view": "view-1"}


def test_streamvis_calls(fake):
    srv, client = fake
    client.clear()
    assert (last(srv).method, last(srv).path) == ("POST", f"{DOC}/streamvis/clear")
    client.set_layout(dict(top=(0, 0, 1, 2), low=(1, 0, 2, 1)))
    assert last(srv).path == f"{DOC}/streamvis/layout"
    assert last(srv).json() == {"grid": {"top": [0, 0, 1, 2], "low": [1, 0, 2, 1]}}
    client.tandem_lines("top", [3, 0.5, np.float64(0.25), math.nan])
    assert last(srv).body == b'{"plot":"top","values":[3,0.5,0.25,null]}'
    client.scatter("low", np.array([[1.0, 2.0], [3.0, 4.0]]), spatial_dim=1, append=False)
    assert last(srv).json() == {"plot": "low", "points": [[1.0, 2.0], [3.0, 4.0]], "spatial_dim": 1,
                                "append": False}
    client.scatter("low", [[1, 2]], 1)
    assert last(srv).json()["append"] is True


@pytest.mark.parametrize("grid", [{}, {"a": (0, 0, 1)}, {"a": "0011"}, {"a": (0, 0, 1, 1.5)}, [("a", (0, 0, 1, 1))]])
def test_set_layout_rejects_bad_grids(fake, grid):
    srv, client = fake
    with pytest.raises(ValueError):
        client.set_layout(grid)
    assert srv.recorded() == []


def test_publish_a_spec_dict(fake):
    srv, client = fake
    srv.rec.status = 201
    srv.rec.answer = {"name": "runs/exp42", "url": "http://h/d/runs/exp42/", "seq": 1,
                      "sources": {"m": {"id": "p1", "columns": {"x": "float64"}, "rows": 0}}}
    spec = {"title": "t", "anything": [1, {"nested": math.inf}]}
    got = client.publish(spec)
    req = last(srv)
    assert (req.method, req.path) == ("PUT", DOC)
    assert req.body == b'{"title":"t","anything":[1,{"nested":1e999}]}'
    assert got == Published("runs/exp42", "http://h/d/runs/exp42/", 1, True, srv.rec.answer["sources"])
    srv.rec.status = 200
    assert client.publish(spec).created is False


def test_publish_with_a_retention_sends_it_as_query_parameters(fake):
    srv, client = fake
    srv.rec.status = 201
    srv.rec.answer = {"name": "runs/exp42", "url": "http://h/d/runs/exp42/", "seq": 1}
    client.publish({"title": "t"}, max_rows=1000, max_age="12h")
    req = last(srv)
    assert (req.method, req.path, req.query) == ("PUT", DOC, {"max_rows": ["1000"], "max_age": ["12h"]})
    client.publish({"title": "t"}, max_age="30s")
    assert last(srv).query == {"max_age": ["30s"]}
    client.publish({"title": "t"})
    assert last(srv).query == {}


@pytest.mark.parametrize("bad", [{"max_rows": 0}, {"max_rows": True}, {"max_rows": 1.5}, {"max_age": ""},
                                 {"max_age": 30}])
def test_publish_rejects_a_bad_retention(fake, bad):
    srv, client = fake
    with pytest.raises(ValueError):
        client.publish({"title": "t"}, **bad)
    assert srv.recorded() == []


def test_publish_a_bokeh_model_sends_its_json_item_and_keeps_the_title(fake):
    from bokeh.document import Document
    from bokeh.plotting import figure

    srv, client = fake
    srv.rec.answer = {"name": "runs/exp42", "url": "u", "seq": 1, "sources": {}}
    p = figure(name="plot")
    p.line([1, 2], [3, 4], name="line")
    doc = Document()
    doc.title = "My run"
    doc.add_root(p)
    client.publish(p)
    body = last(srv).json()
    assert set(body) >= {"doc", "root_id", "target_id", "version"}
    assert body["root_id"] == p.id and body["doc"]["title"] == "My run"
    assert len(body["doc"]["roots"]) == 1
    assert doc.title == "My run"


def test_publish_a_bokeh_document_sends_its_doc_json(fake):
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource, Slider

    srv, client = fake
    srv.rec.answer = {"name": "runs/exp42", "url": "u", "seq": 1, "sources": {}}
    doc = Document()
    doc.title = "T"
    doc.add_root(Slider(start=0, end=1, value=0.5, name="lr"))
    doc.add_root(ColumnDataSource(data={"x": np.array([1.5, -0.0])}, name="src"))
    client.publish(doc)
    body = last(srv).json()
    assert body["title"] == "T" and len(body["roots"]) == 2 and "config" in body
    text = json.dumps(body)
    assert '"type": "bytes"' in text and '"data": "' in text


def test_publish_rejects_other_objects(fake):
    srv, client = fake
    with pytest.raises(TypeError):
        client.publish([1, 2])
    assert srv.recorded() == []


def test_info_and_delete(fake):
    srv, client = fake
    srv.rec.answer = {"name": "runs/exp42", "seq": 9, "sources": {}}
    assert client.info()["seq"] == 9
    assert (last(srv).method, last(srv).path) == ("GET", DOC)
    client.delete()
    assert (last(srv).method, last(srv).path) == ("DELETE", DOC)


def test_prefix_is_part_of_every_path():
    with FakeServer(Recorder()) as srv, Client(srv.url + "/plots/", "a") as client:
        client.clear_source("s")
        assert last(srv).path == "/plots/api/v1/documents/a/sources/s/clear"
