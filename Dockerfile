# The ctxeval base image: every bundle image starts FROM it.
#
# With a registry:   docker build --build-arg BASE_IMAGE=python:3.11-slim .
# Without one:       `ctxeval build` first makes a rootfs image offline
#                    (scripts/base_image/build_offline.py) and passes it as BASE_IMAGE.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Python packages: already present in the offline rootfs, installed from the index otherwise.
COPY scripts/base_image/requirements.txt /opt/ctxeval/requirements.txt
RUN python3 -c "import numpy, pandas, sklearn, yaml, jsonschema" 2>/dev/null \
    || python3 -m pip install --no-cache-dir -r /opt/ctxeval/requirements.txt

# The unprivileged user every sandbox runs as, and the fixed mount points.
ARG AGENT_UID=1000
RUN groupadd --gid ${AGENT_UID} agent \
    && useradd --uid ${AGENT_UID} --gid ${AGENT_UID} --home-dir /home/agent --create-home --shell /bin/bash agent \
    && mkdir -p /workspace /opt/ctxeval/tools /data /grader /private /output \
    && chown agent:agent /workspace /output
# No setuid/setgid binaries: with no-new-privileges they are inert anyway; remove them as well.
RUN find / -xdev -perm /6000 -type f -exec chmod a-s {} + 2>/dev/null; true

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp \
    HOME=/home/agent \
    CTXEVAL_WORKSPACE=/workspace \
    CTXEVAL_TOOLS=/opt/ctxeval/tools \
    CTXEVAL_DATA=/data
WORKDIR /workspace
USER agent
CMD ["sleep", "infinity"]
