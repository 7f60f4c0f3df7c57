# The two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test install install-test system-deps bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(VENV)/bin/python
	$(PIP) install -q -e .

install-test: $(VENV)/bin/python system-deps
	$(PIP) install -q -e '.[test]'

# exiftool is the independent metadata oracle in the tests; chromium drives the review-app test;
# nginx with its RTMP module is the real streaming server of the `veil live` tests.
system-deps:
	@command -v exiftool >/dev/null && command -v chromium >/dev/null \
	  && [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] \
	  && [ -e /usr/lib/x86_64-linux-gnu/girepository-1.0/GstRtspServer-1.0.typelib ] \
	  && [ -e /usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstisomp4.so ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq libimage-exiftool-perl chromium nginx libnginx-mod-rtmp >/dev/null \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good >/dev/null; \
	  else echo "note: install exiftool, chromium, nginx, libnginx-mod-rtmp and GStreamer's RTSP server (Debian packages: libimage-exiftool-perl chromium nginx libnginx-mod-rtmp python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good) for the full test suite"; fi; }

demo: install
	@mkdir -p out
	$(VENV)/bin/veil redact examples/astronaut.jpg -o out/astronaut.redacted.jpg --overwrite --report out/report.json
	@echo "Redacted copy: out/astronaut.redacted.jpg"
	@echo "Report:        out/report.json"

test: install-test
	$(PY) -m pytest

bench: install-test
	$(PY) benchmarks/bench_scan.py

clean:
	rm -rf $(VENV) out build dist src/*.egg-info
