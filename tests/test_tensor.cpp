// Tensor and Storage: layout, views sharing storage, contiguous copies, factories, dtypes, errors.
#include <doctest/doctest.h>

#include <sstream>

#include "framework/check.h"
#include "framework/random.h"
#include "framework/tensor.h"

using namespace strata;

TEST_CASE("tensor: shape, strides and element count") {
    Tensor t = zeros({2, 3, 4});
    CHECK(t.shape() == Shape{2, 3, 4});
    CHECK(t.strides() == Shape{12, 4, 1});
    CHECK(t.numel() == 24);
    CHECK(t.dim() == 3);
    CHECK(t.size(-1) == 4);
    CHECK(t.is_contiguous());
    CHECK(t.dtype() == DType::F32);
    CHECK(t.device() == kCPU);
    Tensor scalar = full({}, 2.5f);
    CHECK(scalar.numel() == 1);
    CHECK(scalar.item() == 2.5f);
    CHECK(empty({0, 3}).numel() == 0);
    CHECK_THROWS_WITH_AS(t.size(3), doctest::Contains("dimension 3 is out of range for a 3-D tensor"), Error);
}

TEST_CASE("tensor: factories") {
    CHECK(ones({3}).to_vector() == std::vector<float>{1, 1, 1});
    CHECK(full({2}, -4.f).to_vector() == std::vector<float>{-4, -4});
    CHECK(arange(4).to_vector() == std::vector<float>{0, 1, 2, 3});
    CHECK(arange(3, DType::I64).to_vector_i64() == std::vector<int64_t>{0, 1, 2});
    CHECK(full({2}, 7.f, DType::I32).to_vector_i64() == std::vector<int64_t>{7, 7});
    Tensor v = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    CHECK(v.to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
    CHECK_THROWS_WITH_AS(from_vector({1, 2, 3}, {2, 2}), doctest::Contains("3 values do not fill shape [2, 2]"), Error);
    CHECK_THROWS_WITH_AS(zeros({2, -1}), doctest::Contains("negative size"), Error);

    Generator a(42), b(42);
    Tensor r1 = randn({1000}, a), r2 = randn({1000}, b);
    CHECK(r1.to_vector() == r2.to_vector());  // same seed, same numbers
    std::vector<float> v1 = r1.to_vector();
    double mean = 0, var = 0;
    for (float x : v1) mean += x;
    mean /= 1000;
    for (float x : v1) var += (x - mean) * (x - mean);
    var /= 999;
    CHECK(std::abs(mean) < 0.15);
    CHECK(std::abs(var - 1.0) < 0.15);
    Tensor u = rand_uniform({1000}, -2.f, 3.f, a);
    for (float x : u.to_vector()) CHECK((x >= -2.f && x < 3.f));
}

TEST_CASE("tensor: views share storage with their base") {
    Tensor base = arange(24).reshape({2, 3, 4});
    Tensor p = base.permute({2, 0, 1});
    CHECK(p.shape() == Shape{4, 2, 3});
    CHECK(p.strides() == Shape{1, 12, 4});
    CHECK_FALSE(p.is_contiguous());
    Tensor pc = p.contiguous();
    CHECK(pc.is_contiguous());
    // element (i, j, k) of p is base (j, k, i) = j*12 + k*4 + i
    std::vector<float> v = pc.to_vector();
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 2; ++j)
            for (int k = 0; k < 3; ++k) CHECK(v[size_t(i * 6 + j * 3 + k)] == float(j * 12 + k * 4 + i));

    Tensor n = base.narrow(1, 1, 2);  // rows 1..2 of each 3x4 matrix
    CHECK(n.shape() == Shape{2, 2, 4});
    CHECK(n.offset() == 4);
    CHECK(n.contiguous().to_vector() ==
          std::vector<float>{4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23});
    n.fill_(-1.f);  // writes through the view into the base
    CHECK(base.to_vector()[4] == -1.f);
    CHECK(base.to_vector()[0] == 0.f);

    Tensor r = base.reshape({6, -1});
    CHECK(r.shape() == Shape{6, 4});
    CHECK(r.impl()->storage == base.impl()->storage);  // reshape of a contiguous tensor copies nothing
    Tensor rp = p.reshape({-1});                          // reshape of a permuted view must copy
    CHECK(rp.impl()->storage != base.impl()->storage);
    CHECK(rp.to_vector() == p.contiguous().to_vector());

    CHECK_THROWS_WITH_AS(base.reshape({5, -1}), doctest::Contains("cannot reshape [2, 3, 4]"), Error);
    CHECK_THROWS_WITH_AS(base.permute({0, 0, 1}), doctest::Contains("appears twice"), Error);
    CHECK_THROWS_WITH_AS(base.narrow(2, 3, 2), doctest::Contains("range [3, 5) is outside dimension 2 of size 4"),
                         Error);
}

TEST_CASE("tensor: clone, copy_ and detach") {
    Tensor a = from_vector({1, 2, 3, 4}, {2, 2});
    Tensor c = a.clone();
    c.fill_(0);
    CHECK(a.to_vector() == std::vector<float>{1, 2, 3, 4});
    Tensor t = zeros({2, 2});
    t.copy_(a.transpose(0, 1));
    CHECK(t.to_vector() == std::vector<float>{1, 3, 2, 4});
    Tensor d = a.detach();
    CHECK(d.impl()->storage == a.impl()->storage);
    CHECK_FALSE(d.requires_grad());
    CHECK_THROWS_WITH_AS(t.copy_(zeros({3})), doctest::Contains("copy_: source shape [3] differs"), Error);
    CHECK_THROWS_WITH_AS(t.copy_(zeros({2, 2}, DType::I32)), doctest::Contains("dtype I32 differs"), Error);
}

TEST_CASE("tensor: dtype-checked data access and item") {
    Tensor i = from_vector_i32({3, -1}, {2});
    CHECK(i.i32()[1] == -1);
    CHECK_THROWS_WITH_AS(i.f32(), doctest::Contains("expected an F32 tensor, got I32"), Error);
    CHECK_THROWS_WITH_AS(ones({2}).item(), doctest::Contains("item(): the tensor has 2 elements"), Error);
    CHECK(from_vector_i64({9}, {1}).item() == 9.f);
    CHECK_THROWS_WITH_AS(Tensor().shape(), doctest::Contains("undefined Tensor"), Error);
}

TEST_CASE("tensor: printing shows shape, dtype, device and values") {
    std::ostringstream out;
    out << from_vector({1, 2}, {1, 2});
    CHECK(out.str() == "Tensor[1, 2] F32 cpu {1, 2}");
}

TEST_CASE("tensor: devices") {
    CHECK(parse_device("cpu") == kCPU);
    CHECK(parse_device("cuda:1").index == 1);
    CHECK_THROWS_WITH_AS(parse_device("gpu"), doctest::Contains("unknown device 'gpu'"), Error);
    CHECK(ones({2}).to(kCPU).to_vector() == std::vector<float>{1, 1});
}
