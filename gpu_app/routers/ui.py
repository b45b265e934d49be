"""The web page at /ui: static HTML, CSS and JavaScript, served by the app itself (no CDN).

The page's own files carry no data, so they are open like the probes: a browser cannot send a
header when it loads a page. Every call the page makes to the API sends the `X-API-Key` the user
enters (kept in the tab's sessionStorage), so the data stays behind the key.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
# Every file the page is made of, with its type; nothing else under /ui is served.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# Paths the API key middleware lets through (exact paths: it matches no prefixes).
UI_PATHS = frozenset({"/ui", "/ui/", *(f"/ui/{name}" for name in ASSETS)})

# Only the page's own files; images come from the API as blobs, thumbnails are drawn on canvases.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The files change with the app's version: revalidate instead of running a stale script.
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["ui"], include_in_schema=False)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    # Relative, so the page also works behind a path prefix: its API calls are relative to /ui/.
    return RedirectResponse("ui/", status_code=status.HTTP_308_PERMANENT_REDIRECT)


@router.get("/ui/")
async def ui_page() -> FileResponse:
    return asset("index.html")


@router.get("/ui/{name}")
async def ui_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {name} in the web page")
    return asset(name)


def asset(name: str) -> FileResponse:
    return FileResponse(UI_DIR / name, media_type=ASSETS[name], headers=SECURITY_HEADERS)
