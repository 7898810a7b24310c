/** Express 4 is installed as `express4` (npm alias) without its own types; its API here is Express's. */
declare module 'express4' {
  import express from 'express';
  export default express;
}
