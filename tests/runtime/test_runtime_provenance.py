"""runtime.provenance: what a result row says about the machine, read from /proc/cpuinfo text."""
from runtime.provenance import MACHINE_KEYS, cpu_flags, isa, machine

AVX512_EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2 avx512f avx512_vnni avx512_bf16\n"
AVX2_EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2\n"
PI5 = ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
       "asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n")


def test_isa_tells_apart_two_cpus_with_one_model_name():
    # Two "AMD EPYC" VMs (AVX-512 and AVX2-only) ran 4.2x apart on a ResNet-8 epoch.
    assert isa(cpu_flags(AVX512_EPYC)) == "avx avx2 fma avx512f avx512_vnni avx512_bf16"
    assert isa(cpu_flags(AVX2_EPYC)) == "avx avx2 fma"


def test_isa_on_arm_and_where_there_is_no_cpuinfo():
    assert isa(cpu_flags(PI5)) == "asimd asimdhp asimddp"   # the Pi 5's dot product
    assert cpu_flags("") == set() and isa(set()) == ""


def test_machine_has_every_key_and_this_cpus_isa():
    m = machine()
    assert list(m) == list(MACHINE_KEYS) == ["cpu", "arch", "cores", "isa"]
    assert m["isa"] == isa() and isinstance(m["cores"], int)
