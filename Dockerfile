# The tenantguard image: one static binary on a distroless base.
#   docker build -t registry.example.com/tenantguard:v0.1.0 --build-arg VERSION=v0.1.0 .
FROM golang:1.26 AS build
ARG VERSION=v0.0.0-dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/tenantguard/tenantguard/internal/version.Version=${VERSION}" \
      -o /out/tenantguard ./cmd/tenantguard

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/tenantguard /tenantguard
USER 65532:65532
ENTRYPOINT ["/tenantguard"]
