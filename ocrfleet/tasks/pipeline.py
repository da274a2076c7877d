"""One job, start to finish, without Celery: fetch each reference, decode the image or render
the requested PDF pages, crop regions, recognise all lines in batches, build the result."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ocrfleet.config.settings import Settings
from ocrfleet.recognition.crop import crop_region
from ocrfleet.recognition.engine import check_line
from ocrfleet.recognition.inputs import decode_image_bytes, is_pdf, render_pdf_bytes
from ocrfleet.storage.refs import fetch


class JobCancelled(Exception):
    pass


@dataclass
class Timings:
    fetch_s: float = 0.0
    decode_s: float = 0.0
    crop_s: float = 0.0
    recognize_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: round(v, 4) for k, v in {**self.__dict__, **self.extra}.items() if k != "extra"}


def lines_of(s: Settings, spec: dict, timings: Timings, cancelled=lambda: False):
    """(entry, line image) per text line, in input/page/region order. ``cancelled`` is asked
    between inputs (the task has just checked before the first). Every decode and crop is
    charged to the job's pixel budget first (budget.py)."""
    from ocrfleet.recognition.inputs import PDF_SCALE
    from ocrfleet.tasks import budget as pixels

    held = pixels.PixelBudget(s.max_job_pixels)
    for index, item in enumerate(spec["inputs"]):
        if index and cancelled():
            raise JobCancelled()
        ref = item["ref"]
        regions = item.get("regions")
        t0 = time.perf_counter()
        data = fetch(s, ref)
        t1 = time.perf_counter()
        timings.fetch_s += t1 - t0
        if is_pdf(data):
            need = pixels.pdf_pixels(data, item.get("pages"), PDF_SCALE)
            charged = held.charge(need, ref, "PDF pages") if need is not None else 0
            pages = list(render_pdf_bytes(data, ref, pages=item.get("pages"), max_pages=s.max_pdf_pages))
        else:
            need = pixels.image_pixels(data)
            charged = held.charge(need, ref, "image") if need is not None else 0
            pages = [(None, decode_image_bytes(data, ref))]
        if not charged:  # header not understood up front: charge what was decoded
            charged = held.charge(sum(img.shape[0] * img.shape[1] for _, img in pages), ref, "image")
        del data
        t2 = time.perf_counter()
        timings.decode_s += t2 - t1
        if regions is not None:  # only the crops are kept: the pages go once cropped
            held.release(charged)
        for page_index, image in pages:
            base = {"input_index": index, "input_path": ref, "page_index": page_index}
            if regions is None:
                yield {**base, "region_index": None}, image
                continue
            for r_index, region in enumerate(regions):
                clipped = pixels.clip_region(region, image.shape)
                held.charge(pixels.crop_pixels(clipped, image.shape), ref, f"crop of region {r_index}")
                yield {**base, "region_index": r_index, "region": region}, crop_region(image, clipped)
        del pages
        timings.crop_s += time.perf_counter() - t2


def _png(image, text: str, score: float) -> bytes:
    import io

    from ocrfleet.recognition.visualize import draw_result

    buf = io.BytesIO()
    draw_result(image, text, score).save(buf, format="PNG")
    return buf.getvalue()


def write_visuals(s: Settings, job_id: str, entries: list[dict], images: list, cancelled=lambda: False) -> None:
    """One PNG per line at ``<prefix>/<job_id>/<n>.png``; sets each entry's ``vis_uri``. Drawing
    runs here, the uploads overlap on a few threads."""
    from concurrent.futures import ThreadPoolExecutor

    from ocrfleet.storage.results import write_visual

    def one(n: int) -> str:
        entry = entries[n]
        return write_visual(s, job_id, n, _png(images[n], entry["rec_text"], entry["rec_score"]))

    if cancelled():
        raise JobCancelled()
    with ThreadPoolExecutor(max_workers=min(4, len(entries)) or 1) as pool:
        for entry, uri in zip(entries, pool.map(one, range(len(entries)))):
            entry["vis_uri"] = uri


def run_job(s: Settings, spec: dict, recognizer, cancelled=lambda: False, models=None) -> dict:
    """The result body (without job-level bookkeeping) for a valid spec; raises OcrFleetError.
    With ``"visualize": true`` the line images are drawn and stored before this returns (so
    before the result object is written). Inputs that are pages (tasks/pages.py) are detected
    with ``models(name)`` (the worker's ModelCache.get); their lines join the one recognise call."""
    from ocrfleet.tasks import pages as paging

    timings = Timings()
    entries, images = [], []
    reader = paging.PageReader(s, spec, models, timings) if paging.wants_pages(spec) else None
    rows = []  # every input is read (and charged to the budget) before the first page is detected
    for entry, image in lines_of(s, spec, timings, cancelled):
        page = reader is not None and entry.get("region_index") is None and paging.is_page(
            paging.input_mode(spec, spec["inputs"][entry["input_index"]]), image, s)
        if not page:
            where = entry["input_path"] if entry.get("region_index") is None \
                else f"{entry['input_path']} region {entry['region_index']}"
            image = check_line(image, where)  # errors name the reference, not "array"
        rows.append((page, entry, image))
    for n, (page, entry, image) in enumerate(rows):
        rows[n] = None  # a page is dropped once cropped
        if not page:
            entries.append(entry)
            images.append(image)
            continue
        if cancelled():
            raise JobCancelled()
        for line, crop in reader.read(entry, image):
            entries.append(line)
            images.append(check_line(crop, f"{line['input_path']} line {line['line_index']}"))
        del image
    t0 = time.perf_counter()
    # every line was checked above (check_line, naming its reference): not again in the engine
    texts = recognizer.recognize(images, batch_size=spec.get("batch_size", s.default_batch_size), checked=True) \
        if images else []
    timings.recognize_s = time.perf_counter() - t0
    for entry, (text, score) in zip(entries, texts):
        entry["rec_text"] = text
        entry["rec_score"] = float(score)
    if spec.get("visualize") and (entries or reader is not None):
        t1 = time.perf_counter()
        cut = [n for n, e in enumerate(entries) if "line_index" not in e]  # page lines: one PNG per page
        write_visuals(s, spec["job_id"], [entries[n] for n in cut], [images[n] for n in cut], cancelled)
        if reader is not None:
            reader.write_visuals(spec["job_id"], entries)
        timings.extra["visualize_s"] = time.perf_counter() - t1
    scores = [e["rec_score"] for e in entries]
    summary = {"inputs": len(spec["inputs"]), "lines": len(entries),
               "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
               "recognize_calls": 1 if images else 0}
    body = {"items": entries, "summary": summary, "timings": timings.as_dict()}
    if reader is not None:
        body["pages"] = reader.finish(entries)
        summary["pages"] = len(body["pages"])
    return body
