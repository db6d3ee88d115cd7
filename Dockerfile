FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY webapp webapp
COPY jobs jobs
COPY sumup_fake sumup_fake
RUN pip install --no-cache-dir . && mkdir -p var
EXPOSE 8000
CMD ["python", "-m", "events.serve", "--timeout", "30"]
