# Sourced by scripts/test and scripts/demo: makes sure the Debian packages are installed.
# As root it installs what is missing with apt-get; otherwise it prints the exact command and stops.
incv3_build_packages=(gcc libc6-dev meson ninja-build pkg-config libhwloc-dev libcmocka-dev zlib1g-dev libjansson-dev libpng-dev)
# Not needed to build: gnuplot draws loss.png and accuracy.png (the trainer writes the rest without it);
# curl and gzip fetch MNIST; python3 compares checkpoints in the trainer test.
incv3_run_packages=(gnuplot-nox curl ca-certificates gzip python3)
# Only for the tests: Debian's Fashion-MNIST, which the trainer test also learns (skipped where absent).
incv3_test_packages=(dataset-fashion-mnist)

# Only for the MPI build (-Dmpi=enabled) and its tests (meson test --suite mpi): Open MPI.
incv3_mpi_packages=(libopenmpi-dev openmpi-bin)

# Only for scripts/fuzz: clang with libFuzzer and its OpenMP runtime.
incv3_fuzz_packages=(clang libomp-dev)

# Only for `scripts/test --cross aarch64`: Debian's AArch64 cross compiler, qemu-user to run the tests, and
# the target's libraries from Debian's arm64 architecture (multiarch; added with dpkg when missing).
incv3_cross_aarch64_packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libgomp1:arm64
    libhwloc-dev:arm64 libcmocka-dev:arm64 zlib1g-dev:arm64 libjansson-dev:arm64 libpng-dev:arm64)

incv3_ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        case " ${missing[*]}" in *:arm64*)
            dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64 ;;
        esac
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        echo "missing packages; install them with:" >&2
        echo "  sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
}
