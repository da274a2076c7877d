"""``visualize``: one PNG per recognised line beside the result object, listed as ``vis_uri``."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from ocrfleet.producer import SpecError
from ocrfleet.storage.results import read_result, result_key
from ocrfleet.jobs import contract as keys

from .conftest import DATA

pytestmark = pytest.mark.timeout(60)


def _image(client, uri: str) -> Image.Image:
    bucket, key = uri[len("s3://"):].split("/", 1)
    img = Image.open(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))
    img.load()
    return img


def test_visualize_writes_one_png_per_line_before_the_result(producer, settings, worker, inputs, s3_server):
    c = s3_server.client()
    lines = inputs["lines"][:3]
    receipt = sorted(DATA.glob("receipts/wildreceipt/*.jpeg"))[0].name
    boxes = [[10, 10, 210, 50], [20, 60, 260, 100]]
    job = producer.submit([lines[0], lines[1], lines[2], {"ref": f"s3://inputs/receipts/{receipt}",
                                                          "regions": boxes}], visualize=True)
    assert job.result(timeout=30)["status"] == "succeeded"

    result = read_result(settings, job.id)
    items = result["items"]
    assert len(items) == 5 and "visualize_s" in result["timings"]
    widths = [_image(c, ref).width for ref in lines] + [b[2] - b[0] for b in boxes]
    result_time = c.head_object(Bucket=settings.results_bucket, Key=result_key(settings, job.id))["LastModified"]
    for n, (item, line_width) in enumerate(zip(items, widths)):
        assert item["vis_uri"] == keys.visual_uri(settings, job.id, n)
        png = _image(c, item["vis_uri"])
        assert png.format == "PNG" and png.mode == "RGB"
        assert png.width > line_width, (n, png.size, line_width)  # the line, then its text and score
        bucket, key = item["vis_uri"][len("s3://"):].split("/", 1)
        head = c.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "image/png" and head["LastModified"] <= result_time
    listed = c.list_objects_v2(Bucket=settings.results_bucket, Prefix=f"{settings.results_prefix}/{job.id}/")
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed["Contents"]) == [f"{n}.png" for n in range(5)]


def test_no_visualize_no_images_and_spec_checks_the_type(producer, settings, worker, inputs, s3_server):
    job = producer.submit([inputs["lines"][4]])
    assert job.result(timeout=30)["status"] == "succeeded"
    assert "vis_uri" not in read_result(settings, job.id)["items"][0]
    listed = s3_server.client().list_objects_v2(Bucket=settings.results_bucket,
                                                Prefix=f"{settings.results_prefix}/{job.id}/")
    assert listed.get("KeyCount", 0) == 0

    spec = producer.build_spec([inputs["lines"][4]])
    with pytest.raises(SpecError, match="visualize"):
        producer.submit_spec({**spec, "visualize": "yes"})
