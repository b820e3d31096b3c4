# Syllabary image for web and workers. CPU torch by default; the GPU worker uses the CUDA
# build (build arg TORCH_INDEX=https://download.pytorch.org/whl/cu126).
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/syllabary
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY worker ./worker
COPY model ./model
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY scripts/fetch-plotly ./scripts/fetch-plotly
RUN pip install . && python scripts/fetch-plotly /usr/local/share/syllabary

RUN useradd --create-home --uid 1000 syllabary && mkdir -p /data && chown syllabary /data
USER syllabary
ENV SYLLABARY_VAR_DIR=/data SYLLABARY_STORAGE_DIR=/data/storage SYLLABARY_HOST=0.0.0.0
EXPOSE 8000
CMD ["syllabary", "serve", "--host", "0.0.0.0", "--no-worker"]
