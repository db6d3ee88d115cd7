FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY webapp webapp
COPY jobs jobs
COPY fakes fakes
# Installed as root, run as an unprivileged user: a compromised process can change
# neither the code it runs nor the interpreter. It writes only to var/ (backups, the
# log file if LOG_FILE points there).
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home events \
    && mkdir -p var/backups \
    && chown -R events:events var
USER events:events
EXPOSE 8000
CMD ["python", "-m", "events.serve", "--timeout", "30"]
