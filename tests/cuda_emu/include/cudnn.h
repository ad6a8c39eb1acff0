/* CPU emulation of the cuDNN legacy convolution API subset mmnet uses. */
#ifndef EMU_CUDNN_H
#define EMU_CUDNN_H
#include "cuda_runtime.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef enum { CUDNN_STATUS_SUCCESS = 0, CUDNN_STATUS_BAD_PARAM = 2000, CUDNN_STATUS_NOT_SUPPORTED = 3000, CUDNN_STATUS_EXECUTION_FAILED = 5000 } cudnnStatus_t;
typedef enum { CUDNN_DATA_FLOAT = 0 } cudnnDataType_t;
typedef enum { CUDNN_TENSOR_NCHW = 0 } cudnnTensorFormat_t;
typedef enum { CUDNN_CONVOLUTION = 0, CUDNN_CROSS_CORRELATION = 1 } cudnnConvolutionMode_t;
typedef enum { CUDNN_DEFAULT_MATH = 0, CUDNN_TENSOR_OP_MATH = 1, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2, CUDNN_FMA_MATH = 3 } cudnnMathType_t;
typedef enum { CUDNN_NON_DETERMINISTIC = 0, CUDNN_DETERMINISTIC = 1 } cudnnDeterminism_t;
typedef int cudnnConvolutionFwdAlgo_t, cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionBwdFilterAlgo_t;
typedef struct emu_dnn *cudnnHandle_t;
typedef struct emu_tdesc *cudnnTensorDescriptor_t;
typedef struct emu_tdesc *cudnnFilterDescriptor_t;
typedef struct emu_cdesc *cudnnConvolutionDescriptor_t;
typedef struct { int algo; cudnnStatus_t status; float time; size_t memory; cudnnDeterminism_t determinism; cudnnMathType_t mathType; int reserved[3]; } emu_perf;
typedef emu_perf cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdFilterAlgoPerf_t;
const char *cudnnGetErrorString(cudnnStatus_t);
cudnnStatus_t cudnnCreate(cudnnHandle_t *);
cudnnStatus_t cudnnDestroy(cudnnHandle_t);
cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t);
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *);
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *);
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *);
cudnnStatus_t cudnnSetTensorNdDescriptor(cudnnTensorDescriptor_t, cudnnDataType_t, int, const int *, const int *);
cudnnStatus_t cudnnSetFilterNdDescriptor(cudnnFilterDescriptor_t, cudnnDataType_t, cudnnTensorFormat_t, int, const int *);
cudnnStatus_t cudnnSetConvolutionNdDescriptor(cudnnConvolutionDescriptor_t, int, const int *, const int *, const int *, cudnnConvolutionMode_t, cudnnDataType_t);
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t, cudnnMathType_t);
#define EMU_DNN_Q(name, A, B, C, D) \
    cudnnStatus_t name(cudnnHandle_t, A, B, cudnnConvolutionDescriptor_t, D, int, int *, emu_perf *);
EMU_DNN_Q(cudnnFindConvolutionForwardAlgorithm, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t, 0, cudnnTensorDescriptor_t)
EMU_DNN_Q(cudnnGetConvolutionForwardAlgorithm_v7, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t, 0, cudnnTensorDescriptor_t)
EMU_DNN_Q(cudnnFindConvolutionBackwardDataAlgorithm, cudnnFilterDescriptor_t, cudnnTensorDescriptor_t, 0, cudnnTensorDescriptor_t)
EMU_DNN_Q(cudnnGetConvolutionBackwardDataAlgorithm_v7, cudnnFilterDescriptor_t, cudnnTensorDescriptor_t, 0, cudnnTensorDescriptor_t)
EMU_DNN_Q(cudnnFindConvolutionBackwardFilterAlgorithm, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t, 0, cudnnFilterDescriptor_t)
EMU_DNN_Q(cudnnGetConvolutionBackwardFilterAlgorithm_v7, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t, 0, cudnnFilterDescriptor_t)
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t, cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t, int, size_t *);
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, cudnnFilterDescriptor_t, cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t, int, size_t *);
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t, cudnnFilterDescriptor_t, int, size_t *);
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t, const void *, cudnnTensorDescriptor_t, const void *, cudnnFilterDescriptor_t, const void *, cudnnConvolutionDescriptor_t, int, void *, size_t, const void *, cudnnTensorDescriptor_t, void *);
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t, const void *, cudnnFilterDescriptor_t, const void *, cudnnTensorDescriptor_t, const void *, cudnnConvolutionDescriptor_t, int, void *, size_t, const void *, cudnnTensorDescriptor_t, void *);
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t, const void *, cudnnTensorDescriptor_t, const void *, cudnnTensorDescriptor_t, const void *, cudnnConvolutionDescriptor_t, int, void *, size_t, const void *, cudnnFilterDescriptor_t, void *);
#ifdef __cplusplus
}
#endif
#endif
