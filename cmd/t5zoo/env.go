package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/t5zoo/t5zoo/zoo"
)

// envVar is one environment variable t5zoo reads.
type envVar struct {
	Name        string
	Default     string // shown as is; "" when unset means nothing
	Description string
}

// envVars is the one table of the environment variables t5zoo reads, directly or through
// minio-go's credential providers (marked so). Nothing outside cmd/t5zoo reads the
// environment; getenv refuses names not listed here.
func envVars() []envVar {
	return []envVar{
		{"T5ZOO_HOME", "~/.t5zoo", "the local cache: pulled models (models/), partial pulls, locks, and the default registry (registry/)"},
		{"T5ZOO_REGISTRY", "", "the registry to push to and pull from: a directory, s3://BUCKET[/PREFIX], or http(s)://HOST:PORT of a t5zoo serve (read-only); unset: $T5ZOO_HOME/registry"},
		{"T5ZOO_API_KEY", "", "API key sent to an http(s):// registry (a t5zoo serve with keys)"},
		{"T5ZOO_API_KEYS", "", "serve: the API keys, KEY or KEY:admin, comma- or newline-separated (read scope by default); unset: no authentication"},
		{"T5ZOO_API_KEYS_FILE", "", "serve: a file of API keys, one KEY[:SCOPE] per line, added to T5ZOO_API_KEYS (--api-keys-file overrides)"},
		{"T5ZOO_ORIGINS", "", "serve: browser origins allowed to call the API, comma-separated (--allow-origin overrides); unset: same-origin only"},
		{"T5ZOO_HOSTS", "", "serve: Host header values answered beside localhost, IP addresses and the machine's name, comma-separated (--allow-host overrides)"},
		{"T5ZOO_DATA", "", "eval: the folder of the tasks' official files (glue/SST-2/dev.tsv, superglue/BoolQ/val.jsonl, squad/dev-v1.1.json, ...); --data overrides"},
		{"HF_ENDPOINT", "https://huggingface.co", "the Hugging Face Hub that import hf (and run, score and serve, for a published shape the registry lacks) downloads from"},
		{"HF_TOKEN", "", "Hugging Face access token for gated or private repositories (sent as a bearer token, never logged)"},
		{"AWS_ENDPOINT_URL_S3", "", "S3 endpoint of an s3:// registry, e.g. http://127.0.0.1:9000 (http:// means no TLS)"},
		{"AWS_ENDPOINT_URL", "", "S3 endpoint when AWS_ENDPOINT_URL_S3 is unset"},
		{"MINIO_ENDPOINT", "", "S3 endpoint when neither AWS_ENDPOINT_URL_S3 nor AWS_ENDPOINT_URL is set; with none, https://s3.amazonaws.com"},
		{"AWS_REGION", "", "region of the bucket; unset: asked of the server"},
		{"AWS_ACCESS_KEY_ID", "", "S3 access key (minio-go credential chain, first)"},
		{"AWS_SECRET_ACCESS_KEY", "", "S3 secret key (minio-go credential chain)"},
		{"AWS_SESSION_TOKEN", "", "S3 session token for temporary credentials (minio-go credential chain)"},
		{"MINIO_ROOT_USER", "", "access key when the AWS_* keys are unset (minio-go credential chain; also MINIO_ACCESS_KEY)"},
		{"MINIO_ROOT_PASSWORD", "", "secret key with MINIO_ROOT_USER (minio-go credential chain; also MINIO_SECRET_KEY)"},
		{"AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", "AWS credentials file, read when no keys are in the environment (minio-go credential chain)"},
		{"AWS_PROFILE", "default", "profile of the AWS credentials file (minio-go credential chain)"},
	}
}

// getenv returns the value of a variable of envVars, or its default when unset. Asking for
// a variable that is not in the table is a programming error.
func getenv(name string) string {
	for _, v := range envVars() {
		if v.Name == name {
			if s, ok := os.LookupEnv(name); ok && s != "" {
				return s
			}
			return v.Default
		}
	}
	panic("t5zoo: environment variable " + name + " is not in envVars")
}

// homeDir returns $T5ZOO_HOME with "~" expanded.
func homeDir() (string, error) {
	h := getenv("T5ZOO_HOME")
	if rest, ok := strings.CutPrefix(h, "~"); ok && (rest == "" || rest[0] == '/') {
		u, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("T5ZOO_HOME=%s: %w", h, err)
		}
		h = filepath.Join(u, rest)
	}
	return h, nil
}

// openCache opens the local cache at $T5ZOO_HOME.
func openCache() (*zoo.Cache, error) {
	home, err := homeDir()
	if err != nil {
		return nil, err
	}
	return zoo.OpenCache(home)
}

// openRegistry opens the store T5ZOO_REGISTRY names: unset, the cache's own registry; a
// directory; s3://BUCKET[/PREFIX] with the endpoint, region and credentials of the
// environment; or http(s)://HOST:PORT, a t5zoo serve's read-only registry, with the key of
// T5ZOO_API_KEY.
func openRegistry(cache *zoo.Cache) (zoo.Store, error) {
	reg := getenv("T5ZOO_REGISTRY")
	switch {
	case reg == "":
		return cache.Registry(), nil
	case strings.HasPrefix(reg, "s3://"):
		opts, err := s3Options(reg)
		if err != nil {
			return nil, fmt.Errorf("T5ZOO_REGISTRY: %w", err)
		}
		s, err := zoo.NewS3Store(opts)
		if err != nil {
			return nil, fmt.Errorf("T5ZOO_REGISTRY=%s: %w", reg, err)
		}
		return s, nil
	case strings.HasPrefix(reg, "http://"), strings.HasPrefix(reg, "https://"):
		s, err := zoo.NewHTTPStore(reg, zoo.HTTPOptions{Token: getenv("T5ZOO_API_KEY")})
		if err != nil {
			return nil, fmt.Errorf("T5ZOO_REGISTRY: %w", err)
		}
		return s, nil
	case strings.Contains(reg, "://"):
		return nil, fmt.Errorf("T5ZOO_REGISTRY=%s: want a directory, s3://BUCKET[/PREFIX] or http(s)://HOST:PORT", reg)
	default:
		return zoo.NewLocalStore(reg)
	}
}

// s3Options reads s3://BUCKET[/PREFIX] with the endpoint, region and credentials of the
// environment: the same for the registry and for evaluation results in its bucket.
func s3Options(url string) (zoo.S3Options, error) {
	bucket, prefix, err := zoo.ParseS3URL(url)
	if err != nil {
		return zoo.S3Options{}, err
	}
	endpoint := getenv("AWS_ENDPOINT_URL_S3")
	if endpoint == "" {
		endpoint = getenv("AWS_ENDPOINT_URL")
	}
	if endpoint == "" {
		endpoint = getenv("MINIO_ENDPOINT")
	}
	return zoo.S3Options{
		Endpoint: endpoint,
		Bucket:   bucket,
		Prefix:   prefix,
		Region:   getenv("AWS_REGION"),
		Creds:    s3Credentials(),
	}, nil
}

// s3Credentials is minio-go's chain over the AWS and MinIO variables and files of envVars.
// IAM instance roles are not in it: on a machine without them the metadata lookup would
// stall every command.
func s3Credentials() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.FileMinioClient{},
	})
}

// registryName describes a store for messages.
func registryName(s zoo.Store) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}
