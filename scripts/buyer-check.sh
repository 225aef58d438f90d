#!/usr/bin/env bash
# Checks a glassbox firmware bundle (bundle-v1) by hand, with stock tools only:
# GNU tar, openssl, sha256sum, and the shell's usual sed, awk, grep, sort, date.
# No glassbox code runs. docs/buyers.md explains every step; its code blocks
# are this script, verbatim (test/buyer/hand-check.test.ts keeps them equal).
#
#   scripts/buyer-check.sh BUNDLE TRUST_POLICY_JSON
#
# TRUST_POLICY_JSON is the trust policy the recorders are provisioned with
# (roots, threshold, revocations), obtained from HSS separately from the bundle.
# Exit 0: every check passed. 1: a check failed (the FAIL line says which). 2: usage.
set -euo pipefail
export LC_ALL=C
if [ "$#" -ne 2 ] || [ ! -f "$1" ] || [ ! -f "$2" ]; then
  echo "usage: $0 BUNDLE TRUST_POLICY_JSON (both must be existing files)" >&2
  exit 2
fi
BUNDLE=$(realpath "$1")
POLICY=$(realpath "$2")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
fail() { echo "FAIL: $*"; exit 1; }

# --- 1. List the bundle --------------------------------------------------------
tar -tvf "$BUNDLE"
if tar -tvf "$BUNDLE" | grep -v '^-'; then
  fail "the lines above are not regular files (d, l, h, c, b, p): a bundle holds regular files only"
fi
tar -tf "$BUNDLE" > listing.txt

# --- 2. Extract manifest.json and read its artifact list --------------------------
tar -xf "$BUNDLE" --no-same-owner --no-same-permissions manifest.json
{ cat manifest.json; echo; } > manifest.txt
sed -e 's/^{"artifacts":\[{//' -e 's/}\],"egress":.*$//' -e 's/},{/\n/g' manifest.txt > artifacts.txt
sed -n 's/^"name":"\([A-Za-z0-9._-]*\)","role":"[a-z]*","sha256":"\([0-9a-f]\{64\}\)","size":[0-9]*$/\2  artifacts\/\1/p' artifacts.txt > artifacts.sha256
[ "$(wc -l < artifacts.sha256)" -eq "$(wc -l < artifacts.txt)" ] || fail "manifest.json is not a canonical glassbox manifest (artifact list unreadable)"
sed -n 's/^.*"product":"\([^"]*\)".*"version":"\([^"]*\)"}$/product \1, version \2/p' manifest.txt
sed -n 's/^.*"securityVersion":\([0-9]*\),.*$/securityVersion \1/p' manifest.txt
sed -n 's/^.*"provenance":{"buildFinished":"[^"]*","builder":"\([^"]*\)","sourceCommit":"\([0-9a-f]*\)","sourceRepository":"\([^"]*\)"}.*$/built by \1 from \3 at commit \2/p' manifest.txt

# --- 3. Check the order: manifest.json, signature pairs 1..N, artifacts in manifest order
N=$(grep -c '^signatures/[0-9]*\.sig$' listing.txt || true)
[ "$N" -le 16 ] || fail "$N signers: a bundle holds at most 16"
{
  echo manifest.json
  for k in $(seq 1 "$N"); do echo "signatures/$k.sig"; echo "signatures/$k.pem"; done
  sed 's/^[0-9a-f]*  //' artifacts.sha256
} > expected.txt
diff expected.txt listing.txt || fail "the entries (right) differ from manifest.json, signatures/1..$N, then the manifest's artifacts in order (left)"
tar -xf "$BUNDLE" --no-same-owner --no-same-permissions

# --- 4. The trust policy: roots, threshold, revocations ---------------------------
{ cat "$POLICY"; echo; } > policy.txt
grep -q '^{"revoked":{"certificates":\[.*"schema":"glassbox.trust/v1","threshold":[0-9]*}$' policy.txt || fail "$POLICY is not a canonical glassbox trust policy"
sed -e 's/^.*"roots":\["//' -e 's/"\],"schema":.*$//' -e 's/","/\n/g' -e 's/\\n/\n/g' policy.txt > root.pem
THRESHOLD=$(sed -n 's/^.*"threshold":\([0-9]*\)}$/\1/p' policy.txt)
[ -n "$THRESHOLD" ] || fail "cannot read the threshold of $POLICY"
sed -n 's/^{"revoked":{"certificates":\[\([^]]*\)\],"keys":\[\([^]]*\)\]}.*$/\1,\2/p' policy.txt | tr ',' '\n' | tr -d '"' > revoked.txt
awk '/-----BEGIN CERTIFICATE-----/ { n++ } n { print > ("root-" n ".pem") }' root.pem
for r in root-*.pem; do openssl x509 -in "$r" -noout -subject -fingerprint -sha256; done
echo "threshold $THRESHOLD; compare the root fingerprints above with the ones HSS published"

# --- 5. Each signer: chain, EKU, revocation, signature over manifest.json ----------
: > signer-keys.txt
for k in $(seq 1 "$N"); do
  echo "signer $k:"
  if ! openssl x509 -in "signatures/$k.pem" -out "leaf-$k.pem"; then echo "  signer $k: NOT valid (no readable certificate)"; continue; fi
  openssl x509 -in "leaf-$k.pem" -noout -subject -issuer
  rm -f chain-cert-*.pem
  awk '/-----BEGIN CERTIFICATE-----/ { n++ } n { print > ("chain-cert-" n ".pem") }' "signatures/$k.pem"
  ok=yes
  openssl verify -x509_strict -CAfile root.pem -untrusted "signatures/$k.pem" "leaf-$k.pem" || ok=no
  openssl x509 -in "leaf-$k.pem" -noout -ext extendedKeyUsage > "eku-$k.txt" || true
  cat "eku-$k.txt"
  grep -q 'Code Signing' "eku-$k.txt" || { echo "  no Code Signing EKU"; ok=no; }
  openssl x509 -in "leaf-$k.pem" -noout -ext basicConstraints | grep -q 'CA:TRUE' && { echo "  the leaf is a CA"; ok=no; }
  for c in chain-cert-*.pem; do
    [ "$(openssl x509 -in "$c" -noout -subject | cut -d= -f2-)" != "$(openssl x509 -in "$c" -noout -issuer | cut -d= -f2-)" ] || { echo "  $c is self-issued: the chain must not carry a root"; ok=no; }
    cert_sha=$(openssl x509 -in "$c" -outform DER | sha256sum | cut -c1-64) || { echo "  $c is unreadable"; ok=no; }
    key_sha=$(openssl x509 -in "$c" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -c1-64) || ok=no
    if grep -qx -e "$cert_sha" -e "$key_sha" revoked.txt; then echo "  $c is revoked"; ok=no; fi
  done
  openssl x509 -in "leaf-$k.pem" -pubkey -noout > "pub-$k.pem"
  case "$(openssl pkey -pubin -in "pub-$k.pem" -noout -text)" in
    *prime256v1*) openssl dgst -sha256 -verify "pub-$k.pem" -signature "signatures/$k.sig" manifest.json || ok=no ;;
    *secp384r1*) openssl dgst -sha384 -verify "pub-$k.pem" -signature "signatures/$k.sig" manifest.json || ok=no ;;
    *"Exponent: 65537"*)
      bits=$(openssl pkey -pubin -in "pub-$k.pem" -noout -text | sed -n 's/^.*Public-Key: (\([0-9]*\) bit).*$/\1/p')
      [ "$bits" -ge 3072 ] || { echo "  RSA key of $bits bits: at least 3072 required"; ok=no; }
      echo "  RSA-$bits: PKCS #1 v1.5 first; if that says Verification failure, PSS (salt 32) next"
      openssl dgst -sha256 -verify "pub-$k.pem" -signature "signatures/$k.sig" manifest.json ||
        openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -verify "pub-$k.pem" -signature "signatures/$k.sig" manifest.json ||
        ok=no ;;
    *) echo "  key algorithm not accepted (ECDSA P-256/P-384 or RSA >= 3072 with e=65537)"; ok=no ;;
  esac
  if [ "$ok" = yes ]; then
    openssl pkey -pubin -in "pub-$k.pem" -outform DER | sha256sum | cut -c1-64 >> signer-keys.txt
    echo "  signer $k: valid"
  else
    echo "  signer $k: NOT valid"
  fi
done

# --- 6. Threshold: distinct valid signer keys --------------------------------------
DISTINCT=$(sort -u signer-keys.txt | wc -l)
echo "$DISTINCT distinct valid signer keys; the policy requires $THRESHOLD"
[ "$DISTINCT" -ge "$THRESHOLD" ] || fail "only $DISTINCT distinct valid signers, $THRESHOLD required"

# --- 7. Expiry ----------------------------------------------------------------------
EXPIRES=$(sed -n 's/^.*"expires":"\([^"]*\)".*$/\1/p' manifest.txt)
[ "$(date -u +%s)" -le "$(date -u -d "$EXPIRES" +%s)" ] || fail "the manifest expired at $EXPIRES"
echo "manifest valid until $EXPIRES"

# --- 8. Artifacts against the manifest -----------------------------------------------
sha256sum -c artifacts.sha256 || fail "an artifact differs from its manifest sha256 (above)"
echo "OK: $BUNDLE passed every check"
