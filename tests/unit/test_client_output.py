import io
from decimal import Decimal

import pyarrow as pa

from queryall_client.api import parse_json
from queryall_client.output import arrow_bytes, write_csv


def test_csv_keeps_exact_numbers_and_writes_nested_values_as_json() -> None:
    body = parse_json('{"columns":["_bucket","n","d","x","l","b","z"],'
                      '"rows":[["a",18446744073709551615,10.00,0.1,[1,{"k":"v"}],true,null]]}')
    stream = io.StringIO()
    write_csv(stream, body["columns"], body["rows"])
    assert stream.getvalue() == '_bucket,n,d,x,l,b,z\na,18446744073709551615,10.00,0.1,"[1,{""k"":""v""}]",true,\n'


def test_arrow_infers_column_types_from_json_values() -> None:
    body = parse_json('{"columns":["_bucket","i","dec","dbl","txt","nested","mixed"],'
                      '"rows":[["a",1,10.50,0.1,"x",[1],1],["b",null,2.25,1.25,null,[2,3],"s"]]}')
    table = pa.ipc.open_file(arrow_bytes(body["columns"], body["rows"])).read_all()
    assert table.schema.field("i").type == pa.int64()
    assert table.schema.field("dec").type == pa.decimal128(38, 2)
    assert table.schema.field("dbl").type == pa.float64()
    assert table.schema.field("mixed").type == pa.string()
    assert table.to_pylist() == [
        {"_bucket": "a", "i": 1, "dec": Decimal("10.50"), "dbl": 0.1, "txt": "x", "nested": [1], "mixed": "1"},
        {"_bucket": "b", "i": None, "dec": Decimal("2.25"), "dbl": 1.25, "txt": None, "nested": [2, 3],
         "mixed": "s"},
    ]
