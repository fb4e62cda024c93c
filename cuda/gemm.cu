// Row-major GEMM on cuBLAS (see gemm.h), and the cuBLAS handles.
//
// Row-major on a column-major library (Caffe's trick). cuBLAS reads a matrix column by column: a row-major M x N
// matrix with row stride ld is, to cuBLAS, the column-major N x M matrix with leading dimension ld, i.e. its
// transpose. So instead of C = op(A) op(B) we ask cuBLAS for the transposed product
//
//     Cᵀ (N x M) = op(B)ᵀ op(A)ᵀ
//
// passing B first and A second, with the sizes swapped (m = N, n = M) and each operand's own transpose flag: B
// stored row-major K x N (trans_b false) is, column-major, the N x K matrix op(B)ᵀ already, so it takes
// CUBLAS_OP_N; stored N x K (trans_b true) it reads as K x N and takes CUBLAS_OP_T. Nothing is copied or
// transposed in memory, and the leading dimensions are the row strides gemm_cpu takes.
//
// Handles. A cuBLAS handle holds per-device state (workspace, the stream its calls go on) and is costly to create
// (it allocates device memory and synchronizes), so there is one per device, created on the first GEMM that device
// runs and bound to that device's stream (cuda_current_stream(): one stream per device, never changed, so the
// binding is made once). The handles are never destroyed, on purpose: a static destructor would run at exit in an
// order we do not control, possibly after the CUDA runtime has unloaded (cublasDestroy then fails or crashes), and
// the device state in device_cuda.cu is leaked for the same reason (tensors may be freed during static
// destruction). The driver reclaims everything when the process ends; PyTorch leaks its handles likewise.
//
// NOTE: like the rest of the backend, a device is meant to be driven from one host thread at a time (cuBLAS
// handles are not safe to use from two threads at once). Creating the handles is guarded by a mutex.
// NOTE: the math mode stays cuBLAS's default, full FP32. TF32 tensor cores (CUBLAS_TF32_TENSOR_OP_MATH) would be
// several times faster on sm_80/sm_90 but round the operands to 10-bit mantissas; PyTorch also keeps TF32 off for
// matmuls by default, and the parity tests' tolerances assume FP32.
#include <mutex>

#include "cuda/backend.h"
#include "cuda/gemm.h"

namespace strata {

namespace {

constexpr int kMaxHandles = 16;  // devices with a handle; device_cuda.cu handles at most as many

struct Handles {
    std::mutex mutex;
    cublasHandle_t per_device[kMaxHandles] = {};
};

Handles& handles() {
    static Handles* h = new Handles();  // never destroyed: see the file comment
    return *h;
}

cublasOperation_t op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

}  // namespace

void cublas_fail(const char* call, cublasStatus_t status, const char* file, int line) {
    fail_at(file, line,
            str("cuBLAS error: ", call, " returned ", cublasGetStatusName(status), " (", cublasGetStatusString(status),
                ")"));
}

cublasHandle_t cublas_handle() {
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    STRATA_CHECK(device >= 0 && device < kMaxHandles, "cuBLAS: device cuda:", device, " is beyond the ", kMaxHandles,
                 " devices this backend manages");
    cudaStream_t stream = cuda_current_stream();  // before taking the lock: it takes device_cuda.cu's own
    Handles& h = handles();
    std::lock_guard<std::mutex> lock(h.mutex);
    cublasHandle_t& handle = h.per_device[device];
    if (!handle) {
        cublasHandle_t created = nullptr;
        CUBLAS_CHECK(cublasCreate(&created));
        CUBLAS_CHECK(cublasSetStream(created, stream));
        handle = created;
    }
    return handle;
}

void gemm_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    const int64_t kMax = 0x7fffffff;  // cublasSgemm takes int sizes
    STRATA_CHECK(M <= kMax && N <= kMax && K <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
                 "gemm_cuda: sizes exceed the 32-bit range of cublasSgemm (M=", M, ", N=", N, ", K=", K, ")");
    // Cᵀ (N x M) = op(B)ᵀ (N x K) · op(A)ᵀ (K x M), all column-major: see the file comment.
    CUBLAS_CHECK(cublasSgemm(cublas_handle(), op(trans_b), op(trans_a), int(N), int(M), int(K), &alpha, B, int(ldb), A,
                             int(lda), &beta, C, int(ldc)));
}

}  // namespace strata
