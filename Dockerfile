# syntax=docker/dockerfile:1
# Build: docker build -t callgate --build-arg VERSION=$(git describe --always) .
# Run:   docker run -p 8080:8080 -v callgate-data:/data callgate

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Pure Go (SQLite is modernc.org/sqlite), so the binary is static.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/callgate ./cmd/callgate \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/callgate /callgate
COPY --from=build --chown=65532:65532 /out/data /data
ENV CALLGATE_DATA_DIR=/data \
    CALLGATE_ADDR=:8080
EXPOSE 8080
VOLUME /data
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=3s CMD ["/callgate", "healthcheck"]
ENTRYPOINT ["/callgate"]
CMD ["serve"]
