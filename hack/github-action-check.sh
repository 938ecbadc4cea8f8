#!/usr/bin/env bash
# The step of the composite GitHub Action (action.yml) that runs check and the policy test suites.
# Inputs arrive as INPUT_* variables (action.yml maps them), the binary as CEW_BIN. It writes the
# exit codes to $GITHUB_OUTPUT and the text verdicts to $GITHUB_STEP_SUMMARY, and exits with the
# worse of the two exit codes, so the step fails on a denial (1) or an error (2).
# test/cihooks runs this script with the inputs of a few workflows.
set -uo pipefail

bin="${CEW_BIN:?CEW_BIN: the capz-encryption-webhook binary}"
# Whitespace-separated lists: word splitting is the point here.
read -r -d '' -a files <<<"${INPUT_FILES:-.}"
read -r -d '' -a suites <<<"${INPUT_POLICY_TESTS:-}"

common=()
[[ -n "${INPUT_POLICY:-}" ]] && common+=(--policy "$INPUT_POLICY")
[[ -n "${INPUT_SKU_CATALOG:-}" ]] && common+=(--sku-catalog "$INPUT_SKU_CATALOG")
[[ -n "${INPUT_LOCATION:-}" ]] && common+=(--location "$INPUT_LOCATION")
common+=(--namespace "${INPUT_NAMESPACE:-default}")
[[ "${INPUT_FAIL_ON_WARN:-false}" == "true" ]] && common+=(--fail-on-warn)

format="${INPUT_FORMAT:-github}"
if [[ -n "${INPUT_OUTPUT_FILE:-}" ]]; then
  "$bin" check "${common[@]}" -o "$format" "${files[@]}" >"$INPUT_OUTPUT_FILE"
else
  "$bin" check "${common[@]}" -o "$format" "${files[@]}"
fi
code=$?
echo "exit-code=$code" >>"${GITHUB_OUTPUT:-/dev/null}"

if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
  {
    echo '### capz-encryption-webhook check'
    echo '```'
    "$bin" check "${common[@]}" -o text "${files[@]}" 2>&1
    echo '```'
  } >>"$GITHUB_STEP_SUMMARY"
fi

tcode=0
if ((${#suites[@]} > 0)); then
  "$bin" test "${suites[@]}"
  tcode=$?
  echo "test-exit-code=$tcode" >>"${GITHUB_OUTPUT:-/dev/null}"
fi

exit $((code > tcode ? code : tcode))
