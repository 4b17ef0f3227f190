# The project's Airflow image: the official Airflow 3 image plus the locked dependency set.
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11

ENV SECURITYCOACH_HOME=/opt/securitycoach \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/securitycoach/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

WORKDIR /opt/securitycoach
COPY --chown=airflow:root pyproject.toml uv.lock README.md ./
# Exactly the versions in uv.lock (no dev tools), then the project itself without re-resolving.
RUN pip install --no-cache-dir uv \
 && uv export --frozen --no-dev --extra sandbox --no-emit-project --no-hashes -o /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt
COPY --chown=airflow:root plugins ./plugins
COPY --chown=airflow:root sandbox ./sandbox
COPY --chown=airflow:root dags ./dags
COPY --chown=airflow:root include ./include
COPY --chown=airflow:root docker ./docker
RUN pip install --no-cache-dir --no-deps .
